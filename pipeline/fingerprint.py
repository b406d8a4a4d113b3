"""Fingerprints: hashes of inputs and of the settings that shaped an artifact (never mtimes)."""

from __future__ import annotations

import hashlib
import json
import platform
from concurrent.futures import ThreadPoolExecutor

from features.backbones import file_sha256, tensorflow_version, version_of
from pipeline import __version__


def hash_json(obj):
    """SHA-256 of a canonical JSON rendering (sorted keys), for settings and key lists."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_files(paths, workers=4):
    """Content hash of each distinct file, in parallel (IO-bound)."""
    unique = sorted({str(p) for p in paths})
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(unique, pool.map(file_sha256, unique)))


def library_versions():
    """Versions recorded in every artifact (read from metadata: importing TensorFlow is costly)."""
    names = ["numpy", "pandas", "h5py", "opencv-python-headless", "scikit-image", "pydicom", "keras",
             "scikit-learn", "imbalanced-learn"]
    versions = {n: version_of(n) for n in names}
    versions["tensorflow"] = tensorflow_version()
    versions["python"] = platform.python_version()
    versions["breastfuse"] = __version__
    return versions
