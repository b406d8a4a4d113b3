"""Predictions of single fits, kept under the fingerprint of everything they are a function of.

A fit's probabilities depend only on the learner's settings (seed included), the content of the
columns and rows it is fitted on, their labels and groups, the rows it predicts, the library
versions and the code of ``models``: ``fit_key`` hashes exactly those, so a re-run of ``fit`` or another ablation asking for
the same fit reads it back instead of fitting. Entries are numbers and text in ``.npz`` files read
with ``allow_pickle=False``: nothing in the cache can run code, and a damaged entry is refitted.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
VERSION = 1    # the entries' format


def _libraries() -> dict:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    out = {}
    for name in ("numpy", "scipy", "scikit-learn", "imbalanced-learn", "xgboost", "pandas"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _models_code() -> str:
    """The source of this package: a change to how a learner, the fusion or the sampler computes
    makes every earlier entry unreachable, with no version to remember to bump."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


_LIBS = repr(sorted(_libraries().items())) + _models_code()


def fit_key(learner_token, fit_row_hashes, y_fit, groups_fit, pred_row_hashes) -> str:
    """The fingerprint of one fit: learner, the content hashes of its training rows (columns and
    ids), their labels and groups, and the rows it predicts."""
    h = hashlib.sha256()
    for part in (str(VERSION), _LIBS, learner_token):
        h.update(part.encode())
        h.update(b"\0")
    h.update(np.ascontiguousarray(fit_row_hashes).tobytes())
    h.update("\x1f".join(map(str, y_fit)).encode())
    h.update(b"\0")
    if groups_fit is not None:
        h.update("\x1f".join(map(str, groups_fit)).encode())
    h.update(b"\0")
    h.update(np.ascontiguousarray(pred_row_hashes).tobytes())
    return h.hexdigest()


class PredictionCache:
    """key → {"proba", "scores", "scored", "notes", "fit_time", "predict_time"} ("scored": the
    learner's own scores were asked for, None where it has none), in memory and, given a
    folder, on disk (``<folder>/<key[:2]>/<key>.npz``, written atomically)."""

    def __init__(self, folder):
        self.folder = None if folder is None else Path(folder)
        self._memory = {}
        self.hits = 0
        self.write_failed = False

    def _path(self, key):
        return self.folder / key[:2] / f"{key}.npz"

    def get(self, key):
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        if self.folder is None:
            return None
        try:
            with np.load(self._path(key), allow_pickle=False) as z:
                entry = {"key": key, "proba": z["proba"], "scores": z["scores"] if z["has_scores"] else None,
                         "scored": bool(z["scored"]),
                         "notes": [str(n) for n in z["notes"]], "fit_time": float(z["times"][0]),
                         "predict_time": float(z["times"][1])}
        except (OSError, KeyError, ValueError):
            return None
        self._memory[key] = entry
        self.hits += 1
        return entry

    def put(self, key, result):
        entry = {k: result[k] for k in ("proba", "scores", "scored", "notes", "fit_time", "predict_time")}
        entry["key"] = key
        self._memory[key] = entry
        if self.folder is None:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, proba=np.asarray(entry["proba"], dtype=float),
                         scores=np.asarray([] if entry["scores"] is None else entry["scores"], dtype=float),
                         has_scores=entry["scores"] is not None, scored=entry["scored"],
                         notes=np.asarray(entry["notes"], dtype=str),
                         times=np.asarray([entry["fit_time"], entry["predict_time"]], dtype=float))
            os.replace(tmp, path)
        except OSError as exc:
            # a cache that cannot be written costs refits later, never this fit's results
            if not self.write_failed:
                log.warning("fit cache %s cannot be written (%s); fits go on without keeping their "
                            "predictions for re-runs", self.folder, exc.strerror or exc)
            self.write_failed = True
            try:
                os.unlink(tmp)
            except (OSError, UnboundLocalError):
                pass
