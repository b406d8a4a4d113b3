"""A cache of decoded, preprocessed images, keyed by content: decode + preprocess once per image.

Decoding a 50 MB DICOM (and cropping, denoising, equalising it) costs more than a small CNN's
forward pass, and every backbone sees the same preprocessed image. So the result is kept, as a
lossless PNG (mask beside it, notes in a small JSON), under a key of the image's and lesion's
content and every preprocessing parameter: adding a backbone, or re-running with another, reads
PNGs instead of decoding again. Files are written whole (temporary name, then rename), so two
threads or a killed run never leave a half file that could be read back.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)
#: PNG level 1: about as small as level 9 on radiographs, several times faster to write.
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]


class DecodedCache:
    """Preprocessed images by key in one folder; ``hits``/``misses`` count what happened."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.hits = self.misses = 0

    def _paths(self, key):
        base = self.folder / key[:2] / key
        return base.with_suffix(".png"), base.with_name(f"{key}.mask.png"), base.with_suffix(".json")

    def get(self, key):
        """(gray, mask or None, notes), or None when the image is not cached (or unreadable)."""
        image, mask_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text())
            gray = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)
            mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED) > 0 if meta["mask"] else None
        except (OSError, ValueError, KeyError, TypeError):
            self.misses += 1
            return None
        if gray is None or gray.shape != tuple(meta["shape"]) or (mask is not None and mask.shape != gray.shape):
            self.misses += 1
            return None
        self.hits += 1
        return gray, mask, list(meta["notes"])

    def put(self, key, gray, mask, notes):
        """Keep one preprocessed image; a failure to write (disk full) only costs a later decode."""
        image, mask_path, meta_path = self._paths(key)
        try:
            image.parent.mkdir(parents=True, exist_ok=True)
            _write(image, cv2.imencode(".png", gray, _PNG)[1].tobytes())
            if mask is not None:
                _write(mask_path, cv2.imencode(".png", mask.astype(np.uint8) * 255, _PNG)[1].tobytes())
            # the JSON goes last: an entry without it is never read
            _write(meta_path, json.dumps({"shape": list(gray.shape), "mask": mask is not None,
                                          "notes": list(notes)}).encode())
        except OSError as exc:
            log.warning("decoded-image cache: could not write %s (%s); the image will be decoded again next "
                        "time", image, exc)

    def keep_only(self, keys):
        """Remove entries whose key is not in ``keys`` (images no longer in the study)."""
        keys = set(keys)
        removed = 0
        for meta in self.folder.glob("*/*.json"):
            key = meta.stem
            if key not in keys:
                for path in self._paths(key):
                    path.unlink(missing_ok=True)
                removed += 1
        return removed


def _write(path, data):
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{id(data)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
