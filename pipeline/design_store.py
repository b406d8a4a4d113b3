"""The fused design's file format: design.h5 (arrays) and design.json (layout, classes, summary).

Paths come from the catalog; whole-or-nothing comes from the stage's transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from pipeline.records import jsonable


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
        from models.layout import FeatureLayout  # noqa: PLC0415

        return FeatureLayout.coerce(self.meta["layout"])

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


def write_design_files(h5, json_path, design):
    """design.h5 (arrays) and design.json (layout, classes, exclusions, summary) at the given paths."""
    frame = design.frame
    cat_cols = design.layout.clinical_of("categorical")
    num_cols = [c for c in frame.columns if c not in cat_cols]
    with h5py.File(h5, "w") as f:
        f.create_dataset("case_ids", data=np.array(frame.index, dtype=object), dtype=_STR)
        f.create_dataset("y", data=np.array(design.y, dtype=object), dtype=_STR)
        f.create_dataset("groups", data=design.groups.astype(np.int64))
        f.create_dataset("is_test", data=design.is_test.astype(np.int8))
        f.create_dataset("folds", data=design.folds.astype(np.int16))
        f.create_dataset("numeric", data=frame[num_cols].to_numpy(dtype=np.float64))
        f.create_dataset("numeric_columns", data=np.array(num_cols, dtype=object), dtype=_STR)
        cats = frame[cat_cols].astype(object).where(frame[cat_cols].notna(), "").astype(str)
        f.create_dataset("categorical", data=cats.to_numpy(dtype=object).reshape(len(frame), -1), dtype=_STR)
        f.create_dataset("categorical_columns", data=np.array(cat_cols, dtype=object), dtype=_STR)
    Path(json_path).write_text(json.dumps(design.meta, indent=2, default=jsonable), encoding="utf-8")


def _strings(ds):
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in ds[()].ravel()],
                    dtype=object).reshape(ds.shape)


def read_design_files(h5, json_path):
    """The Design from its two files (the catalog checks them against fuse's record first)."""
    meta = json.loads(Path(json_path).read_text(encoding="utf-8"))
    with h5py.File(h5, "r") as f:
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
