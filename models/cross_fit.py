"""Every fit of one comparison, planned together: each learner's CV folds and held-out fit, and each
stack taken apart into the base-learner fits it is made of.

Why: a stack evaluated by CV is (inner folds + 1) fits per base learner and outer fold, and every
ablation stack repeats that on other columns. Planned together,

- a fit that is the same fit (a learner's CV fold and the main stack's base learner on that fold)
  runs once;
- learners fitted on the same rows share one fitted front (fusion, balancing, one-hot), as the
  Pipeline memory did, without hashing the data at each fit;
- each fit's predictions are a pure function of the learner's settings, the content of its columns
  and the labels of its rows: they are kept in a ``PredictionCache`` under that fingerprint, so a
  re-run reads them instead of fitting;
- all fits are one pool of tasks for the workers (joblib: processes here, or a Dask cluster),
  largest first, instead of one learner at a time with the held-out fit alone at the end.

The numbers are those of fitting each learner's Pipeline, and each StackedPipelines, as a whole:
same rows, same order, same seeds (tests compare them bit for bit).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, hash as joblib_hash
from sklearn.base import clone

from .errors import ModelsError
from .evaluate import (CVResult, HoldoutResult, _aligned_proba, _blas, _fit, _own_scores, _rows, collect_notes,
                       fold_tasks)
from .fold_checks import check_fold
from .metrics import bootstrap_ci, classification_metrics
from .prediction_cache import PredictionCache, fit_key
from .splits import cv_folds
from .stacking import StackedPipelines, stacked_features

HOLDOUT = "holdout"


class FitFailed(ModelsError):
    """A fit that cannot be made on this design, naming the (first) model that asked for it."""

    def __init__(self, label, reason):
        super().__init__(label, reason)
        self.label, self.reason = label, reason

    def __str__(self):
        return f"{self.label}: {self.reason}"


@dataclass
class Job:
    """One model of the comparison: a learner's pipeline (or a tuned search) or a stack. ``keep``:
    its model fitted on every training row is returned (to be saved), not only its predictions."""

    label: str
    columns: list
    estimator: object
    keep: bool = False


@dataclass
class _Fit:
    key: str
    estimator: object
    front: str | None            # token of the shared front; None: fitted as a whole
    fit_rows: np.ndarray         # positions in X
    pred_rows: np.ndarray
    keep: bool = False
    scores: bool = False         # also return the learner's own uncalibrated scores
    group: tuple = ()            # (front, split): fits run in one task
    label: str = ""              # the first model asking for it (named in errors)


@dataclass
class _Plan:
    fits: dict = field(default_factory=dict)      # key -> _Fit
    uses: dict = field(default_factory=dict)      # job label -> what to assemble
    requests: int = 0                             # fits asked for, before sharing


def _splittable(est):
    """An imblearn/sklearn Pipeline whose steps before the model can be shared by learners."""
    return hasattr(est, "steps") and len(est.steps) > 1 and getattr(est, "memory", None) is None


def _token_front(est):
    """The fingerprint of a pipeline's steps before its model (None: not shareable)."""
    return joblib_hash(est.steps[:-1]) if _splittable(est) else None


class _Planner:
    def __init__(self, X, y, groups, splits):
        self.X, self.y, self.groups, self.splits = X, y, groups, splits
        self.plan = _Plan()
        self._row_hashes, self._inner = {}, {}

    def inner_folds(self, fit_rows, n_splits, random_state):
        """The stack's inner folds of these rows (the same for every stack with these settings)."""
        key = (fit_rows.tobytes(), n_splits, random_state)
        if key not in self._inner:
            groups = None if self.groups is None else self.groups[fit_rows]
            self._inner[key] = cv_folds(self.y[fit_rows], groups, n_splits=n_splits, n_repeats=1,
                                        random_state=random_state)[0]
        return self._inner[key]

    def rows_hash(self, columns):
        key = tuple(columns)
        if key not in self._row_hashes:
            self._row_hashes[key] = pd.util.hash_pandas_object(self.X[list(columns)], index=True).to_numpy()
        return self._row_hashes[key]

    def request(self, label, est, token, front, columns, split_id, fit_rows, pred_rows, keep=False, scores=False):
        hashes = self.rows_hash(columns)
        key = fit_key(token, hashes[fit_rows], self.y[fit_rows],
                      None if self.groups is None else self.groups[fit_rows], hashes[pred_rows])
        self.plan.requests += 1
        have = self.plan.fits.get(key)
        if have is None:
            self.plan.fits[key] = _Fit(key, est, front, fit_rows, pred_rows, keep, scores, (front or token, split_id),
                                       label)
        else:
            have.keep |= keep
            have.scores |= scores
        return key

    def add(self, job: Job):
        est = job.estimator
        if isinstance(est, StackedPipelines):
            self._add_stack(job)
            return
        token, front = joblib_hash(est), _token_front(est)
        use = {"kind": "learner", "folds": [], "holdout": None}
        for split_id, fit_rows, pred_rows in self.splits:
            holdout = split_id == HOLDOUT
            key = self.request(job.label, est, token, front, job.columns, split_id, fit_rows, pred_rows,
                               keep=job.keep and holdout, scores=not holdout)
            if holdout:
                use["holdout"] = key
            else:
                use["folds"].append(key)
        self.plan.uses[job.label] = use

    def _add_stack(self, job):
        stack = job.estimator
        bases = [(name, est, joblib_hash(est), _token_front(est)) for name, est in stack.estimators]
        use = {"kind": "stack", "splits": {}}
        for split_id, fit_rows, pred_rows in self.splits:
            inner = self.inner_folds(fit_rows, stack.n_splits, stack.random_state)
            holdout = split_id == HOLDOUT
            per_base = []
            for name, est, token, front in bases:
                inner_keys = [self.request(job.label, est, token, front, job.columns, split_id, fit_rows[tr], fit_rows[va])
                              for tr, va in inner]
                outer = self.request(job.label, est, token, front, job.columns, split_id, fit_rows, pred_rows,
                                     keep=job.keep and holdout)
                per_base.append((name, inner_keys, outer))
            use["splits"][split_id] = {"inner": [va for _, va in inner], "bases": per_base}
        self.plan.uses[job.label] = use


# --- what a worker runs ---------------------------------------------------------------------

def _passthrough(step):
    return step is None or (isinstance(step, str) and step == "passthrough")


def _fit_front(steps, X, y):
    """The steps before the model fitted as imblearn's Pipeline fits them (samplers resample)."""
    fitted = []
    for name, step in steps:
        if not _passthrough(step):
            step = clone(step)
            if hasattr(step, "fit_resample"):
                X, y = step.fit_resample(X, y)
            else:
                X = step.fit_transform(X, y)
        fitted.append((name, step))
    return fitted, X, y


def _assembled(est, fitted_front, model):
    pipe = clone(est)
    pipe.steps = list(fitted_front) + [(est.steps[-1][0], model)]
    return pipe


def _run_task(fits, X, y, groups, blas_threads):
    """Fit one group's fits: per distinct training rows, one shared front, then each model."""
    out = []
    with _blas(blas_threads):
        fronts = {}
        for f in fits:
            try:
                out.append(_one_fit(f, X, y, groups, fronts))
            except ModelsError as exc:
                raise FitFailed(f.label, str(exc)) from None
    return out


def _one_fit(f, X, y, groups, fronts):
    """One fit and its predictions. A front (fusion, balancing, one-hot) fitted on these rows by
    an earlier learner of the task is reused; its time counts in every learner that uses it."""
    X_fit, y_fit = _rows(X, f.fit_rows), y[f.fit_rows]
    t0 = time.perf_counter()
    if f.front is None:
        est = clone(f.estimator)
        _fit(est, X_fit, y_fit, None if groups is None else groups[f.fit_rows])
        front_time = 0.0
    else:
        shared = (f.front, f.fit_rows.tobytes())
        if shared not in fronts:
            fronts[shared] = (*_fit_front(f.estimator.steps[:-1], X_fit, y_fit), time.perf_counter() - t0)
            t0 = time.perf_counter()
        fitted, Xt, yt, front_time = fronts[shared]
        est = _assembled(f.estimator, fitted, clone(f.estimator.steps[-1][1]).fit(Xt, yt))
    t1 = time.perf_counter()
    X_pred = _rows(X, f.pred_rows)
    classes = np.unique(y_fit)
    proba = _aligned_proba(est, X_pred, classes)
    t2 = time.perf_counter()
    return {"key": f.key, "proba": proba, "scores": _own_scores(est, X_pred, classes) if f.scores else None,
            "scored": f.scores, "notes": collect_notes(est), "fit_time": front_time + t1 - t0,
            "predict_time": t2 - t1, **({"estimator": est} if f.keep else {})}


# --- the whole comparison -------------------------------------------------------------------

@dataclass
class Comparison:
    """What ``cross_fit`` needs: the design (training rows then held-out rows), the CV folds as
    indices into the training rows, and how to score."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    groups_train: np.ndarray | None
    folds: list
    X_test: pd.DataFrame
    y_test: np.ndarray
    positive: object = None
    seed: int | None = 0
    n_boot: int = 1000


def _splits(comparison, n_train):
    """(split id, fit rows, predicted rows) of every CV fold, then the held-out split, as
    positions in the training rows followed by the held-out rows; and the number of repeats."""
    n_repeats, tasks = fold_tasks(comparison.folds)
    out = [((r, f), tr, va) for r, f, tr, va in tasks]
    out.append((HOLDOUT, np.arange(n_train), n_train + np.arange(len(comparison.y_test))))
    return out, n_repeats


def _usable(entry, fit):
    return entry is not None and not fit.keep and (entry["scored"] or not fit.scores)


class PlannedFits:
    """The fits of a comparison, planned: ``counts`` says how many fits the models asked for, how
    many distinct fits that is, how many the cache already has and how many ``run`` will make."""

    def __init__(self, jobs, comparison: Comparison, cache: PredictionCache | None = None):
        self.jobs, self.comparison = list(jobs), comparison
        self.cache = cache if cache is not None else PredictionCache(None)
        self.X = pd.concat([comparison.X_train, comparison.X_test])
        self.y = np.concatenate([np.asarray(comparison.y_train), np.asarray(comparison.y_test)])
        # groups are read at training rows only, which are the first n_train
        self.groups = None if comparison.groups_train is None else np.asarray(comparison.groups_train)
        self.splits, self.n_repeats = _splits(comparison, len(comparison.y_train))
        planner = _Planner(self.X, self.y, self.groups, self.splits)
        for job in self.jobs:
            planner.add(job)
        self.plan = planner.plan
        self.outputs = {k: v for k, f in self.plan.fits.items() if _usable(v := self.cache.get(k), f)}
        self.todo = [f for k, f in self.plan.fits.items() if k not in self.outputs]
        self.counts = {"requested": self.plan.requests, "distinct": len(self.plan.fits),
                       "cached": len(self.plan.fits) - len(self.todo), "fitted": len(self.todo)}

    def run(self, n_jobs=1, blas_threads=1, progress=None) -> dict:
        """label → (CVResult, HoldoutResult) of every job; ``progress(n)`` as fits complete.
        Tasks go to joblib's active backend (processes, or Dask inside ``parallel_config``)."""
        tasks = {}
        for f in self.todo:
            tasks.setdefault(f.group, []).append(f)
        ordered = sorted(tasks.values(), key=lambda fs: -sum(len(f.fit_rows) for f in fs))
        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_run_task)(fs, self.X, self.y, self.groups, blas_threads) for fs in ordered)
        for batch in results:
            for res in batch:
                self.cache.put(res["key"], res)
                self.outputs[res["key"]] = res
            if progress is not None:
                progress(len(batch))
        # each model's metrics and bootstrap intervals, in parallel too
        classes = np.unique(self.comparison.y_train)
        assembled = Parallel(n_jobs=n_jobs)(
            delayed(_assemble)(job, use, {k: self.outputs[k] for k in _keys(use)}, self.comparison, self.splits,
                               self.n_repeats, classes, self.y)
            for job in self.jobs for use in [self.plan.uses[job.label]])
        return {job.label: result for job, result in zip(self.jobs, assembled)}


def cross_fit(jobs, comparison: Comparison, cache: PredictionCache | None = None, n_jobs=1,
              blas_threads=1, progress=None):
    """(label → (CVResult, HoldoutResult) for every job, ``PlannedFits.counts``): plan, then run.
    A kept model is fitted even when its predictions are cached."""
    planned = PlannedFits(jobs, comparison, cache)
    return planned.run(n_jobs, blas_threads, progress), planned.counts


def _keys(use):
    """The fits a job's results are assembled from."""
    if use["kind"] == "learner":
        return use["folds"] + [use["holdout"]]
    return [k for part in use["splits"].values() for _, inner, outer in part["bases"] for k in inner + [outer]]


def _stack_split(stack, use, outputs, y_fit, classes_fit):
    """The stack of one split from its bases' fits: meta-learner on the inner out-of-fold
    probabilities (in training-row order), applied to the bases' outer predictions."""
    n = len(y_fit)
    inner_oof, outer, notes, fit_time = [], [], [], 0.0
    for _, inner_keys, outer_key in use["bases"]:
        oof = np.zeros((n, len(classes_fit)))
        for va, key in zip(use["inner"], inner_keys):
            oof[va] = outputs[key]["proba"]
            fit_time += outputs[key]["fit_time"] + outputs[key]["predict_time"]
            notes += outputs[key]["notes"]
        inner_oof.append(oof)
        outer.append(outputs[outer_key]["proba"])
        fit_time += outputs[outer_key]["fit_time"]
        notes += outputs[outer_key]["notes"]
    t0 = time.perf_counter()
    final = clone(stack._final()).fit(stacked_features(inner_oof, classes_fit), y_fit)
    fit_time += time.perf_counter() - t0
    t1 = time.perf_counter()
    proba = final.predict_proba(stacked_features(outer, classes_fit))
    return final, proba, fit_time, time.perf_counter() - t1, notes


def _assemble(job, use, outputs, comparison, splits, n_repeats, classes, y):
    n_train = len(comparison.y_train)
    oof = np.full((n_repeats, n_train, len(classes)), np.nan)
    folds, hold = [], None
    for split_id, fit_rows, pred_rows in splits:
        classes_fit = np.unique(y[fit_rows])
        if use["kind"] == "learner":
            key = use["holdout"] if split_id == HOLDOUT else use["folds"][len(folds)]
            res = outputs[key]
            proba, scores, notes = res["proba"], res["scores"], list(res["notes"])
            fit_time, predict_time, model = res["fit_time"], res["predict_time"], res.get("estimator")
        else:
            part = use["splits"][split_id]
            final, raw, fit_time, predict_time, notes = _stack_split(job.estimator, part, outputs,
                                                                     y[fit_rows], classes_fit)
            proba = np.zeros((len(pred_rows), len(classes)))
            proba[:, np.searchsorted(classes, final.classes_)] = raw
            scores, model = None, None
            if job.keep and split_id == HOLDOUT:
                bases = [outputs[outer_key]["estimator"] for _, _, outer_key in part["bases"]]
                model = clone(job.estimator).assembled(bases, final, classes_fit)
        if split_id == HOLDOUT:
            y_test = np.asarray(comparison.y_test)
            hold = HoldoutResult(model, classes, proba, classification_metrics(y_test, proba, classes, comparison.positive),
                                 bootstrap_ci(y_test, proba, classes, n_boot=comparison.n_boot,
                                              random_state=comparison.seed, positive=comparison.positive),
                                 fit_time, predict_time, sorted(set(notes)))
            continue
        r, f = split_id
        oof[r, pred_rows] = proba
        y_val = y[pred_rows]
        checks = check_fold(y_val, proba, classes, comparison.positive, scores,
                            random_state=[0 if comparison.seed is None else comparison.seed, r, f])
        folds.append({"repeat": r, "fold": f, "n_train": len(fit_rows), "n_val": len(pred_rows),
                      "fit_time": fit_time, "predict_time": predict_time,
                      "metrics": classification_metrics(y_val, proba, classes, comparison.positive),
                      "notes": sorted(set(notes)), **checks})
    return CVResult(classes=classes, oof_proba=oof, folds=folds), hold
