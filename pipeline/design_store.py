"""Reading and writing the fused design (design.h5 + design.json), whole or not at all."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from pipeline import artifacts
from pipeline.errors import StageInputError

_STR = h5py.string_dtype("utf-8")


@dataclass
class Design:
    """One row per case: the design frame, labels, groups, the held-out split and CV folds."""

    frame: pd.DataFrame          # columns in layout order; NaN = missing
    y: np.ndarray                # class names
    groups: np.ndarray           # merged patient (+ extra) groups
    is_test: np.ndarray          # bool, the held-out split
    folds: np.ndarray            # (n_repeats, n) fold number, -1 on held-out rows
    meta: dict                   # design.json

    @property
    def layout(self):
        return self.meta["layout"]

    @property
    def classes(self):
        return self.meta["classes"]

    def train_folds(self):
        """Per repeat, [(train, val)] as indices into the training rows."""
        train = np.flatnonzero(~self.is_test)
        out = []
        for rep in self.folds:
            f = rep[train]
            out.append([(np.flatnonzero(f != k), np.flatnonzero(f == k)) for k in range(f.max() + 1)])
        return out


def write_design(run_dir, design):
    h5 = artifacts.design_file(run_dir)
    h5.parent.mkdir(parents=True, exist_ok=True)
    tmp = h5.with_name(f".{h5.name}.tmp-{os.getpid()}")
    frame = design.frame
    cat_cols = [c for c, k in design.layout["clinical"].items() if k == "categorical"]
    num_cols = [c for c in frame.columns if c not in cat_cols]
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("case_ids", data=np.array(frame.index, dtype=object), dtype=_STR)
            f.create_dataset("y", data=np.array(design.y, dtype=object), dtype=_STR)
            f.create_dataset("groups", data=design.groups.astype(np.int64))
            f.create_dataset("is_test", data=design.is_test.astype(np.int8))
            f.create_dataset("folds", data=design.folds.astype(np.int16))
            f.create_dataset("numeric", data=frame[num_cols].to_numpy(dtype=np.float64))
            f.create_dataset("numeric_columns", data=np.array(num_cols, dtype=object), dtype=_STR)
            cats = frame[cat_cols].astype(object).where(frame[cat_cols].notna(), "").astype(str)
            f.create_dataset("categorical", data=cats.to_numpy(dtype=object).reshape(len(frame), -1),
                             dtype=_STR)
            f.create_dataset("categorical_columns", data=np.array(cat_cols, dtype=object), dtype=_STR)
            f.attrs["fingerprint"] = design.meta["fingerprint"]
        os.replace(tmp, h5)
    finally:
        tmp.unlink(missing_ok=True)
    _write_json(artifacts.design_json(run_dir), design.meta)


def _write_json(path, obj):
    artifacts.write_atomic(path, json.dumps(obj, indent=2, default=_jsonable))


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-able: {type(o).__name__}")


def write_json(path, obj):
    """Atomic JSON write shared by the stages (numpy values allowed)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _write_json(Path(path), obj)


def _strings(ds):
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in ds[()].ravel()],
                    dtype=object).reshape(ds.shape)


def read_design(run_dir):
    h5, js = artifacts.design_file(run_dir), artifacts.design_json(run_dir)
    if not (h5.is_file() and js.is_file()):
        raise StageInputError(f"No fused design in {Path(run_dir) / 'fused'}",
                              hint="Run `run_pipeline.py fuse -c <study>` first.")
    meta = json.loads(js.read_text(encoding="utf-8"))
    with h5py.File(h5, "r") as f:
        if f.attrs["fingerprint"] != meta["fingerprint"]:
            raise StageInputError(f"{h5} and {js} come from different runs; run fuse again with --force.")
        index = pd.Index(list(_strings(f["case_ids"])), name="case_id")
        frame = pd.DataFrame(f["numeric"][()], index=index, columns=list(_strings(f["numeric_columns"])))
        cats = _strings(f["categorical"])
        for j, column in enumerate(_strings(f["categorical_columns"])):
            frame[column] = pd.Series(cats[:, j], index=index).replace("", np.nan).astype(object)
        y, groups = _strings(f["y"]), f["groups"][()]
        is_test, folds = f["is_test"][()].astype(bool), f["folds"][()].astype(int)
    layout = meta["layout"]
    columns = [c for cols in layout["blocks"].values() for c in cols] + list(layout["clinical"]) + \
        list(layout["indicators"])
    return Design(frame[columns], y, groups, is_test, folds, meta)
