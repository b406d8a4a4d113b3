"""HDF5 embedding store: one file per (modality, backbone), written whole or not at all.

A file holds case ids, content keys and float32 embeddings, plus attributes describing the
extractor. Writes go to a temporary file that replaces the target with ``os.replace``, so a
killed process leaves the old file or the new one, never a broken one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

log = logging.getLogger(__name__)
_STR = h5py.string_dtype("utf-8")


@dataclass
class EmbeddingTable:
    """Rows of embeddings with their case ids and content keys; ``attrs`` are JSON-able."""

    case_ids: list
    keys: list
    embeddings: np.ndarray
    attrs: dict = field(default_factory=dict)
    feature_names: list | None = None
    views: list | None = None          # per row, the view it embeds (modalities with views), else None

    def __post_init__(self):
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
        if self.embeddings.ndim != 2 or not len(self.case_ids) == len(self.keys) == len(self.embeddings):
            raise ValueError(f"inconsistent table: {len(self.case_ids)} ids, {len(self.keys)} keys, "
                             f"embeddings of shape {self.embeddings.shape}")

    def by_key(self):
        """Content key -> embedding row, for reuse across runs."""
        return dict(zip(self.keys, self.embeddings))


def write_table(path, table):
    """Atomically write ``table`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("case_ids", data=np.array(table.case_ids, dtype=object), dtype=_STR)
            f.create_dataset("keys", data=np.array(table.keys, dtype=object), dtype=_STR)
            f.create_dataset("embeddings", data=table.embeddings, dtype="float32")
            if table.views is not None:
                f.create_dataset("views", data=np.array([v or "" for v in table.views], dtype=object), dtype=_STR)
            if table.feature_names is not None:
                f.create_dataset("feature_names", data=np.array(table.feature_names, dtype=object),
                                 dtype=_STR)
            for name, value in table.attrs.items():
                f.attrs[name] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def fsync_dir(folder):
    """Make a rename in ``folder`` durable (best effort: some file systems refuse a directory fsync)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _decode(values):
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def read_table(path):
    """Read a table, or None if there is no usable file (an unreadable one is logged and ignored)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            names = _decode(f["feature_names"][()]) if "feature_names" in f else None
            views = [v or None for v in _decode(f["views"][()])] if "views" in f else None
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            return EmbeddingTable(case_ids=_decode(f["case_ids"][()]), keys=_decode(f["keys"][()]),
                                  embeddings=f["embeddings"][()], attrs=attrs, feature_names=names,
                                  views=views)
    except (OSError, KeyError, ValueError) as exc:
        log.warning("ignoring unreadable embedding file %s (%s); it will be recomputed", path, exc)
        return None
