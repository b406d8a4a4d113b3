"""Classification metrics from probabilities, bootstrap intervals, and fold summaries.

Computed from the confusion matrix and ranks in numpy (checked against scikit-learn in the tests)
so that a 1000-resample bootstrap takes well under a second.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from .errors import ModelsError

METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1",
           "roc_auc", "pr_auc", "mcc", "brier")


def _div(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)  # sklearn's zero_division=0


def _auc(is_pos, score) -> float:
    """ROC AUC as the Mann–Whitney statistic (ties count half), equal to sklearn's."""
    n1 = int(is_pos.sum())
    n0 = len(is_pos) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[is_pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _average_precision(is_pos, score) -> float:
    """Step-wise area under precision-recall, thresholds at distinct scores (as sklearn)."""
    n1 = int(is_pos.sum())
    if n1 == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    s, hit = score[order], is_pos[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(hit)[last]
    precision = tps / (last + 1)
    recall = tps / n1
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _prepare(y_true, proba, classes, positive):
    classes = np.asarray(classes)
    proba = np.asarray(proba, dtype=float)
    y_true = np.asarray(y_true)
    if proba.ndim != 2 or proba.shape != (len(y_true), len(classes)):
        raise ModelsError(f"expected probabilities of shape ({len(y_true)}, {len(classes)}) "
                          f"(rows × classes), got {proba.shape}")
    if len(classes) < 2:
        raise ModelsError("metrics need at least two classes")
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    unknown = sorted({str(v) for v in y_true.tolist() if v not in lookup})
    if unknown:
        raise ModelsError(f"labels {unknown[:5]} are not among the classes {classes.tolist()}")
    y = np.fromiter((lookup[v] for v in y_true.tolist()), dtype=int, count=len(y_true))
    if len(classes) == 2:
        if positive is None:
            pos = 1
        elif positive in lookup:
            pos = lookup[positive]
        else:
            raise ModelsError(f"positive class {positive!r} is not among {classes.tolist()}")
    else:
        if positive is not None:
            raise ModelsError("a positive class applies to binary problems; multi-class "
                              "metrics are macro averages over all classes")
        pos = None
    return y, proba, pos


def _compute(y, P, pos, names) -> dict[str, float]:
    n, k = P.shape
    C = np.bincount(y * k + P.argmax(1), minlength=k * k).reshape(k, k)
    tp = np.diag(C)
    support, predicted = C.sum(1), C.sum(0)
    fp, fn = predicted - tp, support - tp
    tn = n - tp - fp - fn
    per = {
        "precision": _div(tp, predicted), "recall": _div(tp, support),
        "specificity": _div(tn, tn + fp), "f1": _div(2 * tp, 2 * tp + fp + fn),
    }
    out = {}
    for name in names:
        if name == "accuracy":
            out[name] = np.trace(C) / n
        elif name == "balanced_accuracy":
            out[name] = per["recall"][support > 0].mean()
        elif name in per:
            out[name] = per[name][pos] if pos is not None else per[name].mean()
        elif name in ("roc_auc", "pr_auc"):
            fn_ = _auc if name == "roc_auc" else _average_precision
            cols = [pos] if pos is not None else range(k)
            out[name] = float(np.mean([fn_(y == j, P[:, j]) for j in cols]))
        elif name == "mcc":
            num = np.trace(C) * n - support @ predicted
            den = np.sqrt((n**2 - support @ support) * (n**2 - predicted @ predicted))
            out[name] = num / den if den else 0.0
        elif name == "brier":
            if pos is not None:
                out[name] = np.mean((P[:, pos] - (y == pos)) ** 2)
            else:
                out[name] = np.mean(np.sum((P - np.eye(k)[y]) ** 2, axis=1))
        else:
            raise ModelsError(f"unknown metric '{name}'; choose from {list(METRICS)}")
    return {m: float(v) for m, v in out.items()}


def classification_metrics(y_true, proba, classes, positive=None) -> dict[str, float]:
    """All of METRICS for probabilities whose columns follow ``classes``.

    Binary: precision/recall(sensitivity)/specificity/f1/AUCs/brier for ``positive`` (default the
    second class). Multi-class: macro averages; roc_auc is one-vs-rest macro; brier is the
    multi-class score (sum over classes, mean over rows, range [0, 2], as sklearn). Predictions
    are the most probable class.
    """
    y, P, pos = _prepare(y_true, proba, classes, positive)
    return _compute(y, P, pos, METRICS)


def bootstrap_ci(y_true, proba, classes, metric_names=METRICS, n_boot=1000, random_state=None,
                 positive=None, level=0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals from a stratified bootstrap (each class resampled within itself).

    Stratification keeps every class in every resample, so no resample has to be skipped for a
    missing class; a metric undefined in a resample (NaN) is left out of its percentiles.
    """
    y, P, pos = _prepare(y_true, proba, classes, positive)
    names = list(metric_names)
    rng = np.random.default_rng(random_state)
    members = [np.flatnonzero(y == j) for j in range(P.shape[1]) if (y == j).any()]
    values = {m: np.empty(n_boot) for m in names}
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(m, size=len(m)) for m in members])
        for m, v in _compute(y[idx], P[idx], pos, names).items():
            values[m][b] = v
    tail = (1 - level) / 2 * 100
    out = {}
    for m in names:
        ok = values[m][~np.isnan(values[m])]
        out[m] = (float(np.percentile(ok, tail)), float(np.percentile(ok, 100 - tail))) \
            if ok.size else (float("nan"), float("nan"))
    return out


def summarise_folds(fold_metrics: list[dict]) -> dict[str, dict[str, float]]:
    """Mean and sample SD (ddof=1; NaN for one fold) of each metric over folds."""
    if not fold_metrics:
        return {}
    out = {}
    for name in fold_metrics[0]:
        v = np.array([f[name] for f in fold_metrics], dtype=float)
        ok = int(np.sum(~np.isnan(v)))
        out[name] = {"mean": float(np.nanmean(v)),
                     "sd": float(np.nanstd(v, ddof=1)) if ok > 1 else float("nan"), "n": ok}
    return out


def metrics_of_rows(y_true, proba, classes, positive=None, metric_names=METRICS):
    """``stat(idx) -> {metric: value}`` on the rows ``idx``, labels encoded once: the statistic a
    patient-level bootstrap recomputes per resample (``models.clinical.bootstrap_interval``)."""
    y, P, pos = _prepare(y_true, proba, classes, positive)
    names = list(metric_names)
    return lambda idx: _compute(y[idx], P[idx], pos, names)
