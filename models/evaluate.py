"""Cross-validation over given folds and the one-time held-out evaluation.

Each fold fits a fresh clone of the whole pipeline on its training rows only; out-of-fold
probabilities, per-fold metrics, timings, any automatic fixes (notes) and the fold's own checks
(``fold_checks``: an AUC below chance, a reversed ranking) come back as data.
"""
from __future__ import annotations

import inspect
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from threadpoolctl import threadpool_limits

from .errors import ModelsError
from .fold_checks import check_fold, fold_warnings
from .metrics import bootstrap_ci, classification_metrics, summarise_folds


@dataclass
class CVResult:
    """Out-of-fold probabilities (n_repeats × n × n_classes; NaN where a row was never validated)
    plus one record per fold: repeat, fold, sizes, metrics, fit/predict seconds, notes, and its
    checks (auc_ci, rank_correlation, flags)."""

    classes: np.ndarray
    oof_proba: np.ndarray
    folds: list[dict] = field(default_factory=list)

    @property
    def fold_metrics(self) -> list[dict]:
        return [f["metrics"] for f in self.folds]

    def summary(self) -> dict:
        """Mean and SD of each metric over all folds of all repeats."""
        return summarise_folds(self.fold_metrics)

    def warnings(self) -> list[str]:
        """One sentence per flagged fold (``fold_checks.fold_warnings``)."""
        return fold_warnings(self.folds)

    def pooled_metrics(self, y, positive=None) -> list[dict]:
        """Metrics of each repeat's pooled out-of-fold probabilities."""
        out = []
        for proba in self.oof_proba:
            seen = ~np.isnan(proba).any(1)
            out.append(classification_metrics(np.asarray(y)[seen], proba[seen], self.classes,
                                              positive))
        return out


@dataclass
class HoldoutResult:
    estimator: object
    classes: np.ndarray
    proba: np.ndarray
    metrics: dict
    ci: dict
    fit_time: float
    predict_time: float
    notes: list[str]


def collect_notes(est) -> list[str]:
    """Automatic fixes recorded (``notes_``) anywhere inside a fitted estimator."""
    notes = list(getattr(est, "notes_", []))
    children = [s for _, s in getattr(est, "steps", [])] + list(getattr(est, "estimators_", []))
    for child in children:
        if isinstance(child, BaseEstimator):
            notes += collect_notes(child)
    return notes


def _rows(X, idx):
    return X.iloc[idx] if isinstance(X, (pd.DataFrame, pd.Series)) else np.asarray(X)[idx]


def _fit(est, X, y, groups):
    """Pass groups to estimators that take them (the stack's patient-wise inner CV)."""
    if groups is not None and "groups" in inspect.signature(est.fit).parameters:
        return est.fit(X, y, groups=np.asarray(groups))
    return est.fit(X, y)


def _aligned_proba(est, X, classes):
    """Columns follow ``classes`` even if a training fold lacked one (that column is 0)."""
    proba = est.predict_proba(X)
    out = np.zeros((proba.shape[0], len(classes)))
    out[:, np.searchsorted(classes, est.classes_)] = proba
    return out


def _blas(threads):
    """Folds are the unit of parallelism; BLAS threads on these small matrices only contend
    (measured: 40× slower on a busy 2-core machine). None leaves the BLAS setting alone."""
    return threadpool_limits(limits=threads, user_api="blas") if threads else nullcontext()


def _own_scores(est, X, classes):
    """The uncalibrated scores of a learner that calibrates its probabilities (its model exposes
    ``uncalibrated_scores``, as the svm's calibration does), inside a tuned search and a pipeline,
    where its fold saw every class (else columns would not line up with ``classes``); else None."""
    while hasattr(est, "best_estimator_"):
        est = est.best_estimator_
    model = est.steps[-1][1] if hasattr(est, "steps") else est
    if not hasattr(model, "uncalibrated_scores") or len(model.classes_) != len(classes):
        return None
    if hasattr(est, "steps"):
        X = est[:-1].transform(X)
    return np.asarray(model.uncalibrated_scores(X), dtype=float)


def _run_fold(est, X, y, groups, train, val, classes, positive, blas_threads, check_seed):
    with _blas(blas_threads):
        t0 = time.perf_counter()
        _fit(est, _rows(X, train), y[train], None if groups is None else groups[train])
        t1 = time.perf_counter()
        proba = _aligned_proba(est, _rows(X, val), classes)
        t2 = time.perf_counter()
        scores = _own_scores(est, _rows(X, val), classes)
    checks = check_fold(y[val], proba, classes, positive, scores, random_state=check_seed)
    return {"proba": proba, "fit_time": t1 - t0, "predict_time": t2 - t1,
            "metrics": classification_metrics(y[val], proba, classes, positive),
            "notes": collect_notes(est), **checks}


def fold_tasks(folds):
    """(n_repeats, [(repeat, fold, train, val), ...]) of [(train, val), ...] for one repeat or
    [[(train, val), ...], ...] for several; overlapping training and validation rows are refused."""
    repeats = folds if np.ndim(folds[0][0][0]) == 1 else [folds]
    tasks = [(r, f, np.asarray(tr), np.asarray(va))
             for r, rep in enumerate(repeats) for f, (tr, va) in enumerate(rep)]
    for r, f, tr, va in tasks:
        if np.intersect1d(tr, va).size:
            raise ModelsError(f"repeat {r}, fold {f}: training and validation rows overlap")
    return len(repeats), tasks


def cross_validate_learner(make_estimator, X, y, folds, n_jobs=1, groups=None, positive=None,
                           blas_threads=1, random_state=0) -> CVResult:
    """Fit a clone per (repeat, fold) in parallel and gather out-of-fold probabilities.

    ``make_estimator`` is an unfitted estimator or a zero-argument factory for one. Results do not
    depend on n_jobs or scheduling: every fold clones the same seeded template, and each fold's
    AUC bootstrap is seeded by (``random_state``, repeat, fold).
    """
    template = make_estimator if isinstance(make_estimator, BaseEstimator) else make_estimator()
    y = np.asarray(y)
    groups = None if groups is None else np.asarray(groups)
    classes = np.unique(y)
    n_repeats, tasks = fold_tasks(folds)
    results = Parallel(n_jobs=n_jobs)(
        delayed(_run_fold)(clone(template), X, y, groups, tr, va, classes, positive, blas_threads,
                           [0 if random_state is None else random_state, r, f])
        for r, f, tr, va in tasks)
    oof = np.full((n_repeats, len(y), len(classes)), np.nan)
    records = []
    for (r, f, tr, va), res in zip(tasks, results):
        oof[r, va] = res.pop("proba")
        records.append({"repeat": r, "fold": f, "n_train": len(tr), "n_val": len(va), **res})
    return CVResult(classes=classes, oof_proba=oof, folds=records)


def evaluate_holdout(estimator, X_train, y_train, X_test, y_test, groups_train=None, n_boot=1000,
                     random_state=None, positive=None, blas_threads=1) -> HoldoutResult:
    """Fit once on all training rows, score the held-out rows once, with bootstrap 95% CIs."""
    est = clone(estimator)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    classes = np.unique(y_train)
    with _blas(blas_threads):
        t0 = time.perf_counter()
        _fit(est, X_train, y_train, groups_train)
        t1 = time.perf_counter()
        proba = _aligned_proba(est, X_test, classes)
        t2 = time.perf_counter()
    metrics = classification_metrics(y_test, proba, classes, positive)
    ci = bootstrap_ci(y_test, proba, classes, n_boot=n_boot, random_state=random_state,
                      positive=positive)
    return HoldoutResult(est, classes, proba, metrics, ci, t1 - t0, t2 - t1, collect_notes(est))
