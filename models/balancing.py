"""Oversampling that runs only inside training folds (imblearn Pipeline step), made fold-safe.

Small or skewed folds break SMOTE's neighbour search; ``FoldSafeOversampler`` fixes that per fold
(fewer neighbours, or no oversampling) and logs and records what it did.
"""
from __future__ import annotations

import logging

import numpy as np
from imblearn.over_sampling import ADASYN, SMOTE, SMOTEN, SMOTENC, BorderlineSMOTE
from sklearn.base import BaseEstimator
from sklearn.neighbors import NearestNeighbors

from .errors import ModelsError

log = logging.getLogger(__name__)

OVERSAMPLERS = ("smote", "borderline-smote", "adasyn")
BALANCING = OVERSAMPLERS + ("class-weight", "none")


def make_sampler(name, categorical_indices=(), random_state=None, k_neighbors=5):
    """The pipeline's "balance" step for a balancing name; None where no rows are made.

    "class-weight" and "none" make no rows: the learner is weighted instead, or not at all.
    """
    if name not in BALANCING:
        raise ModelsError(f"unknown balancing '{name}'; choose one of {list(BALANCING)}")
    if name in ("class-weight", "none"):
        return None
    return FoldSafeOversampler(method=name, categorical_indices=list(categorical_indices),
                               k_neighbors=k_neighbors, random_state=random_state)


def _indices(categorical_indices, n_features: int) -> np.ndarray:
    """Negative indices count from the end, so a pipeline can say "the last c columns"."""
    if categorical_indices is None or len(categorical_indices) == 0:
        return np.array([], dtype=int)
    return np.unique(np.arange(n_features)[np.asarray(categorical_indices, dtype=int)])


class FoldSafeOversampler(BaseEstimator):
    """SMOTE (SMOTENC with categorical columns), Borderline-SMOTE or ADASYN, safe on small folds.

    When the smallest class to oversample has m <= k_neighbors rows, k becomes m - 1; with m == 1
    nothing is oversampled. Borderline-SMOTE and ADASYN interpolate only the continuous columns;
    a synthetic row takes each categorical value most common among its k nearest real
    neighbours of its class (SMOTENC's rule), so synthetic categories are always real ones.
    ``notes_`` records every adjustment made in the last ``fit_resample``.
    """

    def __init__(self, method="smote", categorical_indices=(), k_neighbors=5, random_state=None):
        self.method = method
        self.categorical_indices = categorical_indices
        self.k_neighbors = k_neighbors
        self.random_state = random_state

    def fit_resample(self, X, y, **params):
        if self.method not in OVERSAMPLERS:
            raise ModelsError(f"unknown oversampler '{self.method}'; choose one of {OVERSAMPLERS}")
        X, y = np.asarray(X, dtype=float), np.asarray(y)
        self.notes_ = []
        self.categorical_indices_ = _indices(self.categorical_indices, X.shape[1])
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise ModelsError(f"cannot oversample a training set with one class ({classes})")
        to_grow = counts[counts < counts.max()]
        if to_grow.size == 0:
            self._note("classes already balanced; nothing to oversample", logging.INFO)
            self.k_neighbors_ = None
            return X, y
        smallest = int(to_grow.min())
        if smallest <= 1:
            self._note(f"{self.method}: a class has {smallest} training row; oversampling "
                       "skipped in this fold", logging.WARNING)
            self.k_neighbors_ = None
            return X, y
        k = self.k_neighbors
        if smallest <= k:
            k = smallest - 1
            self._note(f"{self.method}: smallest class has {smallest} training rows; "
                       f"k_neighbors reduced from {self.k_neighbors} to {k}", logging.INFO)
        self.k_neighbors_ = k
        return self._resample(X, y, k)

    def _note(self, message, level):
        log.log(level, message)
        self.notes_.append(message)

    def _resample(self, X, y, k):
        cat = self.categorical_indices_
        if cat.size == X.shape[1]:
            # only categorical columns (e.g. a clinical-only ablation): SMOTEN, the nominal SMOTE
            self._note(f"{self.method}: all columns are categorical; SMOTEN used", logging.INFO)
            self.sampler_ = SMOTEN(k_neighbors=k, random_state=self.random_state)
            return self.sampler_.fit_resample(X, y)
        if self.method == "smote":
            if cat.size:
                sampler = SMOTENC(categorical_features=cat.tolist(), k_neighbors=k,
                                  random_state=self.random_state)
            else:
                sampler = SMOTE(k_neighbors=k, random_state=self.random_state)
            self.sampler_ = sampler
            return sampler.fit_resample(X, y)
        cont = np.setdiff1d(np.arange(X.shape[1]), cat)
        Xc, yr = self._interpolate(X[:, cont], y, k)
        if not cat.size:
            return Xc, yr
        out = np.empty((len(yr), X.shape[1]))
        out[:, cont] = Xc
        out[: len(y), cat] = X[:, cat]
        out[len(y):, cat] = _neighbour_categories(X[:, cont], X[:, cat], y, Xc[len(y):],
                                                  yr[len(y):], k)
        return out, yr

    def _interpolate(self, X, y, k):
        """imblearn's samplers append synthetic rows after the originals; we rely on that."""
        if self.method == "borderline-smote":
            sampler = BorderlineSMOTE(k_neighbors=k, m_neighbors=min(10, len(y) - 1),
                                      random_state=self.random_state)
        else:
            sampler = ADASYN(n_neighbors=k, random_state=self.random_state)
        try:
            Xr, yr = sampler.fit_resample(X, y)
        except (RuntimeError, ValueError) as err:
            # ADASYN's two dead ends: no majority neighbours at all (ratio undefined), or the
            # weights round to zero new rows; anything else is a real error
            if isinstance(err, ValueError) and "No samples will be generated" not in str(err):
                raise
            self._note(f"{self.method} cannot weight this fold ({err}); used SMOTE instead",
                       logging.WARNING)
            sampler = SMOTE(k_neighbors=k, random_state=self.random_state)
            Xr, yr = sampler.fit_resample(X, y)
        if not np.array_equal(Xr[: len(y)], X):
            raise RuntimeError(f"{type(sampler).__name__} did not keep the original rows first")
        self.sampler_ = sampler
        return Xr, yr


def _neighbour_categories(X_cont, X_cat, y, new_cont, new_y, k):
    """Most common category among each synthetic row's k nearest real rows of its class."""
    out = np.empty((len(new_y), X_cat.shape[1]))
    for cls in np.unique(new_y):
        real, new = y == cls, new_y == cls
        nn = NearestNeighbors(n_neighbors=min(k, int(real.sum()))).fit(X_cont[real])
        idx = nn.kneighbors(new_cont[new], return_distance=False)
        cats = X_cat[real][idx]  # (n_new, k, n_cat)
        for j in range(X_cat.shape[1]):
            out[new, j] = [_mode(row) for row in cats[:, :, j]]
    return out


def _mode(values):
    vals, counts = np.unique(values, return_counts=True)
    return vals[np.argmax(counts)]  # ties: the smallest code, deterministically
