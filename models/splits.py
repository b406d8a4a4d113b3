"""Patient-wise, stratified splits: the held-out test split and repeated CV folds.

Rows tied by patient (or by an extra grouping such as near-duplicate images) always land on the
same side of every split; the ties are merged transitively (connected components).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold

from .errors import ModelsError

log = logging.getLogger(__name__)

MAX_RESEEDS = 20


def merged_groups(groups, extra_groups=None) -> np.ndarray:
    """One integer group per row: rows sharing a patient or an extra group, transitively.

    ``extra_groups`` is one array or a list of arrays aligned with the rows; NaN/None there means
    "tied to nothing".
    """
    patients = pd.Series(np.asarray(groups, dtype=object))
    if patients.isna().any():
        raise ModelsError(f"{patients.isna().sum()} rows have no patient group; "
                          "every row needs one")
    codes = [pd.factorize(patients)[0]]
    if extra_groups is not None:
        several = isinstance(extra_groups, (list, tuple)) and len(extra_groups) > 0 and all(
            np.ndim(e) == 1 for e in extra_groups)
        for e in (list(extra_groups) if several else [extra_groups]):
            e = np.asarray(e, dtype=object)
            if len(e) != len(patients):
                raise ModelsError(f"extra_groups has {len(e)} entries for {len(patients)} rows")
            codes.append(pd.factorize(pd.Series(e))[0])  # NaN → -1: no tie
    n = len(patients)
    rows, cols, offset = [], [], n
    for c in codes:
        tied = c >= 0
        rows.append(np.flatnonzero(tied))
        cols.append(c[tied] + offset)
        offset += c.max() + 1 if tied.any() else 0
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(offset, offset))
    _, labels = connected_components(graph, directed=False)
    return pd.factorize(labels[:n])[0]


def _check_y(y, groups):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ModelsError(f"expected labels as a 1D array, got shape {y.shape}")
    if pd.isna(pd.Series(y, dtype=object)).any():
        raise ModelsError("some labels are missing (NaN); drop or label those cases first")
    if groups is None:
        groups = np.arange(len(y))
    if len(groups) != len(y):
        raise ModelsError(f"{len(groups)} groups for {len(y)} labels")
    classes = np.unique(y).tolist()
    if len(classes) < 2:
        raise ModelsError(f"only one class ({classes[0]!r}) in the labels; "
                          "classification needs at least two")
    return y, groups


def _check_groups_per_class(y, g, n_splits, what, fix):
    counts = {c: len(np.unique(g[y == c])) for c in np.unique(y).tolist()}
    short = {c: k for c, k in counts.items() if k < n_splits}
    if short:
        c, k = min(short.items(), key=lambda kv: kv[1])
        raise ModelsError(
            f"class {c!r} occurs in only {k} patient groups (after merging related rows), fewer "
            f"than the {n_splits} {what} asked for; {fix(min(counts.values()))}, "
            "or gather more cases of that class")


def _complete(y, train, val, classes) -> bool:
    return len(np.unique(y[train])) == len(classes) and len(np.unique(y[val])) == len(classes)


def _seeds(random_state, n):
    """Seeds for repeats and re-tries, all derived from one seed so runs repeat exactly."""
    return np.random.default_rng(random_state).integers(0, 2**31 - 1, size=n)


def _stratified_group_split(y, g, n_splits, seed):
    """One StratifiedGroupKFold partition in which every fold holds every class.

    StratifiedGroupKFold balances greedily and can leave a fold without a class when groups are
    large; such a partition is redrawn with a derived seed (logged), up to MAX_RESEEDS times.
    """
    classes = np.unique(y)
    for attempt, s in enumerate(_seeds(int(seed), MAX_RESEEDS)):
        s = int(seed) if attempt == 0 else int(s)
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=s)
        folds = [(np.sort(tr), np.sort(va)) for tr, va in cv.split(np.zeros(len(y)), y, g)]
        if all(_complete(y, tr, va, classes) for tr, va in folds):
            if attempt:
                log.info("folds redrawn %d times so that every fold holds every class", attempt)
            return folds
    raise ModelsError(
        f"could not split into {n_splits} patient-wise folds that each hold every class "
        f"({MAX_RESEEDS} tries); patient groups are too large or too few for that many folds — "
        "use fewer folds")


def cv_folds(y, groups=None, n_splits=5, n_repeats=1, random_state=None, extra_groups=None):
    """Repeated patient-wise stratified K-fold: a list (one per repeat) of [(train, val), ...].

    ``groups`` None means every row is its own patient. Each repeat is seeded from
    ``random_state`` (an int, or None for fresh randomness).
    """
    y, groups = _check_y(y, groups)
    if n_splits < 2 or n_repeats < 1:
        raise ModelsError(f"need n_splits >= 2 and n_repeats >= 1, got {n_splits}, {n_repeats}")
    g = merged_groups(groups, extra_groups)
    _check_groups_per_class(y, g, n_splits, "folds",
                            lambda k: f"use at most {k} folds" if k >= 2 else "no number of folds can split it")
    return [_stratified_group_split(y, g, n_splits, s) for s in _seeds(random_state, n_repeats)]


def holdout_split(y, groups=None, test_size=0.2, random_state=None, extra_groups=None):
    """(train_idx, test_idx): one patient-wise stratified fold of round(1/test_size) as the test."""
    y, groups = _check_y(y, groups)
    if not 0 < test_size <= 0.5:
        raise ModelsError(f"test_size must be in (0, 0.5], got {test_size}")
    n_splits = max(2, int(round(1 / test_size)))
    g = merged_groups(groups, extra_groups)
    _check_groups_per_class(y, g, n_splits, "parts (1/test_size)",
                            lambda k: f"use test_size >= {1 / k:.2g}" if k >= 2
                            else "no test_size can hold out part of a class with one group")
    train, test = _stratified_group_split(y, g, n_splits, _seeds(random_state, 1)[0])[0]
    return train, test
