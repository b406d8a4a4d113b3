"""Content hashes and library versions for caches and fingerprints.

Standard library only, so the stages that only hash and record (fuse, fit, report) never pull in
image libraries or TensorFlow through this module.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata


def file_sha256(path, chunk=1 << 20):
    """SHA-256 of a file's bytes, read in chunks (weights files run to hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def hash_json(obj):
    """SHA-256 of a canonical JSON rendering (sorted keys); this exact rendering keys existing caches."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def version_of(package):
    """An installed distribution's version from its metadata (no import), or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def tensorflow_version():
    """TensorFlow's version without importing it (importing costs seconds)."""
    return version_of("tensorflow") or version_of("tensorflow-cpu")
