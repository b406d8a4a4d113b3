"""What a radiology-AI paper reports beyond AUC, for binary (or one-vs-rest) predictions: operating
points, calibration, decision curves, patient-level bootstrap intervals, subgroup heterogeneity."""
from __future__ import annotations

import numbers
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from .errors import ModelsError
from .metrics import _auc

RULES = ("youden", "sensitivity", "specificity", "threshold")
_FORMS = ("'youden', {'sensitivity': v}, {'specificity': v}, {'threshold': v} or a bare "
          "threshold v, with 0 < v < 1")
# A rate is a ratio of counts compared with a decimal target (0.9 ≥ 0.9 must hold after rounding).
_EPS = 1e-12
_INTERVALS = (("auc", "auc_low", "auc_high"),
              ("sensitivity", "sensitivity_low", "sensitivity_high"),
              ("specificity", "specificity_low", "specificity_high"),
              ("auc_diff", "diff_low", "diff_high"))
_COLUMNS = ["subgroup", "n", "n_pos", "prevalence", "too_few",
            *(column for trio in _INTERVALS for column in trio), "p_heterogeneity", "flagged"]


def _ratio(a, b) -> float:
    return float(a / b) if b else np.nan


def _binary(is_pos, score):
    y, s = np.asarray(is_pos), np.asarray(score, dtype=float)
    if y.ndim != 1 or s.shape != y.shape:
        raise ModelsError(f"expected is_pos and score as 1-D arrays of one length, got shapes "
                          f"{y.shape} and {s.shape}")
    if y.dtype != bool and not np.isin(y, [0, 1]).all():
        raise ModelsError(f"is_pos must be boolean (or 0/1), got {y.dtype} values such as "
                          f"{y[~np.isin(y, [0, 1])][:3].tolist()}")
    if not np.isfinite(s).all():
        raise ModelsError(f"scores must be finite; {int(np.sum(~np.isfinite(s)))} of {len(s)} "
                          f"are NaN or infinite")
    return y.astype(bool), s


def parse_operating_point(spec) -> dict:
    """The config's operating point as {"rule", "value"}; refuses anything ambiguous up front."""
    if isinstance(spec, str):
        if spec.strip().lower() == "youden":
            return {"rule": "youden", "value": None}
        raise ModelsError(f"unknown operating point {spec!r}; expected {_FORMS}")
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        rule, value = "threshold", spec
    elif isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in RULES[1:]:
        (rule, value), = spec.items()
    else:
        raise ModelsError(f"operating point {spec!r} is not one of the accepted forms: {_FORMS}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ModelsError(f"operating point {spec!r}: the {rule} must be a fraction with "
                          f"0 < v < 1 (0.95, not 95), got {value!r}; expected {_FORMS}")
    return {"rule": rule, "value": float(value)}


def _roc_points(y, s):
    """Every classification ``score >= t`` allows: t just above the top score, then each distinct
    score from the highest down, with the TP and FP counts at each."""
    order = np.argsort(-s, kind="mergesort")
    ranked, hit = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(s) - 1]
    tp = np.r_[0, np.cumsum(hit)[last]]
    fp = np.r_[0, last + 1 - tp[1:]]
    return np.r_[np.nextafter(ranked[0], np.inf), ranked[last]], tp, fp


def choose_threshold(is_pos, score, op: dict) -> dict:
    """The threshold of an operating point, from TRAINING (out-of-fold) predictions only.

    A pure function of these arrays: the threshold then travels, fixed, to the test set. When
    no distinct score reaches a specificity target, the threshold lies just above the top score.
    ``op`` is re-validated (it may have come back from a file); a raw config spec also works.
    """
    if isinstance(op, dict) and "rule" in op:
        op = op["rule"] if op["rule"] == "youden" else {op["rule"]: op.get("value")}
    rule, value = parse_operating_point(op).values()
    y, s = _binary(is_pos, score)
    if rule == "threshold":
        t = float(value)
    else:
        n1, n0 = int(y.sum()), int((~y).sum())
        if not n1 or not n0:
            raise ModelsError(f"choosing a '{rule}' threshold needs both classes in the training "
                              f"predictions; got {n1} positive and {n0} negative rows")
        thr, tp, fp = _roc_points(y, s)
        if rule == "youden":
            j = tp[1:] * n0 - fp[1:] * n1        # (sens + spec - 1) * n1 * n0, exact in integers
            t = thr[1:][np.argmax(j)]           # first maximum = the highest threshold
        elif rule == "sensitivity":
            t = thr[np.argmax(tp / n1 >= value - _EPS)]
        else:  # specificity only falls as the threshold falls: the qualifying ones are a prefix
            t = thr[np.flatnonzero((n0 - fp) / n0 >= value - _EPS)[-1]]
    m = threshold_metrics(y, s, t)
    return {"rule": rule, "value": value, "threshold": float(t),
            "sensitivity": m["sensitivity"], "specificity": m["specificity"]}


def threshold_metrics(is_pos, score, threshold) -> dict:
    """Counts and rates of ``score >= threshold``; a rate with no rows to count is NaN, not 0."""
    y, s = _binary(is_pos, score)
    pred = s >= threshold
    tp, fp = int(np.sum(pred & y)), int(np.sum(pred & ~y))
    fn, tn = int(np.sum(~pred & y)), int(np.sum(~pred & ~y))
    return {"n": len(y), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
            "ppv": _ratio(tp, tp + fp), "npv": _ratio(tn, tn + fn)}


def _read_roc(is_pos, score, target, given):
    if not 0 <= target <= 1:
        raise ModelsError(f"a target {given} must lie in [0, 1], got {target!r}")
    y, s = _binary(is_pos, score)
    n1, n0 = int(y.sum()), int((~y).sum())
    if not n1 or not n0:
        return np.nan
    _, tp, fp = _roc_points(y, s)
    sens, spec = tp / n1, (n0 - fp) / n0
    return float(sens[spec >= target - _EPS].max() if given == "specificity"
                 else spec[sens >= target - _EPS].max())


def sensitivity_at_specificity(is_pos, score, specificity) -> float:
    """Best sensitivity on the empirical ROC among thresholds with at least that specificity."""
    return _read_roc(is_pos, score, specificity, "specificity")


def specificity_at_sensitivity(is_pos, score, sensitivity) -> float:
    """Best specificity on the empirical ROC among thresholds with at least that sensitivity."""
    return _read_roc(is_pos, score, sensitivity, "sensitivity")


def _logistic_fit(X, y, offset, start, max_iter=100, tol=1e-8):
    """Newton–Raphson with step halving; NaN when it does not converge (separated classes)."""
    def loglik(b):
        eta = offset + X @ b
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    beta = np.asarray(start, dtype=float)
    current = loglik(beta)
    for _ in range(max_iter):
        mu = expit(offset + X @ beta)
        try:
            step = np.linalg.solve((X * (mu * (1 - mu))[:, None]).T @ X, X.T @ (y - mu))
        except np.linalg.LinAlgError:
            break
        for _ in range(30):
            new = loglik(beta + step)
            if new >= current - 1e-12:
                break
            step = step / 2
        beta, current = beta + step, new
        if np.max(np.abs(step)) < tol:
            return beta
    return np.full(len(beta), np.nan)


def calibration_intercept_slope(is_pos, prob) -> dict:
    """Logistic recalibration: slope < 1 means over-confident probabilities; intercept
    (calibration-in-the-large, slope held at 1) < 0 means the risk is over-estimated overall."""
    y, p = _binary(is_pos, prob)
    if y.all() or not y.any():
        return {"intercept": np.nan, "slope": np.nan}
    lp, t = logit(np.clip(p, 1e-6, 1 - 1e-6)), y.astype(float)
    ones = np.ones((len(t), 1))
    intercept = _logistic_fit(ones, t, offset=lp, start=[0.0])
    slope = _logistic_fit(np.c_[ones, lp], t, offset=0.0, start=[0.0, 1.0])
    return {"intercept": float(intercept[0]), "slope": float(slope[1])}


def net_benefit(is_pos, prob, thresholds) -> np.ndarray:
    """Vickers & Elkin's net benefit: true positives gained, less false positives weighted by the
    odds t/(1-t) at which a clinician would treat."""
    y, p = _binary(is_pos, prob)
    t = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if not ((t > 0) & (t < 1)).all():
        bad = t[(t <= 0) | (t >= 1)]
        raise ModelsError(f"net-benefit thresholds must lie in (0, 1), got {bad} among them")
    treated = p[None, :] >= t[:, None]
    n = len(y)
    return (treated & y).sum(1) / n - (treated & ~y).sum(1) / n * t / (1 - t)


def decision_curve(is_pos, probs: dict, thresholds=None) -> pd.DataFrame:
    """Net benefit of each model and of the two default strategies, as a long table."""
    t = np.round(np.arange(0.01, 0.99 + 1e-9, 0.01), 2) if thresholds is None \
        else np.atleast_1d(np.asarray(thresholds, dtype=float))
    clash = sorted({"treat all", "treat none"} & set(probs))
    if clash:
        raise ModelsError(f"model names {clash} are reserved for the default strategies")
    curves = {name: net_benefit(is_pos, p, t) for name, p in probs.items()}
    prevalence = float(np.mean(np.asarray(is_pos, dtype=bool)))
    curves["treat all"] = prevalence - (1 - prevalence) * t / (1 - t)
    curves["treat none"] = np.zeros_like(t)
    return pd.DataFrame({"threshold": np.tile(t, len(curves)),
                         "model": np.repeat(list(curves), len(t)).astype(object),
                         "net_benefit": np.concatenate(list(curves.values()))})


def _codes(values, n, name):
    values = np.asarray(values)
    if values.shape != (n,):
        raise ModelsError(f"expected {name} with one entry per row ({n}), got shape {values.shape}")
    codes = pd.factorize(values)[0]
    if (codes < 0).any():
        raise ModelsError(f"{name} has {int(np.sum(codes < 0))} missing entries")
    return codes


def resample_indices(n, groups=None, strata=None, n_boot=1000, random_state=None):
    """Bootstrap row indices. With ``groups`` whole patients are drawn, so images of one patient
    never count as independent evidence; ``strata`` keeps each stratum's count fixed."""
    rng = np.random.default_rng(random_state)
    stratum = np.zeros(n, dtype=int) if strata is None else _codes(strata, n, "strata")
    if groups is not None:
        codes = _codes(groups, n, "groups")
        order = np.argsort(codes, kind="stable")
        size = np.bincount(codes)
        start = np.r_[0, np.cumsum(size)[:-1]]
        stratum = stratum[order[start]]            # a patient's stratum: that of its first row
    members = [np.flatnonzero(stratum == k) for k in np.unique(stratum)]

    def draws():
        for _ in range(n_boot):
            drawn = np.concatenate([rng.choice(m, size=len(m)) for m in members])
            if groups is None:
                yield drawn
                continue
            lengths = size[drawn]                  # every row of each drawn patient
            shift = np.repeat(start[drawn] - np.cumsum(lengths) + lengths, lengths)
            yield order[shift + np.arange(lengths.sum())]
    return draws()


def _draws(statistic, n, groups, strata, n_boot, random_state):
    values = [statistic(idx) for idx in resample_indices(n, groups, strata, n_boot, random_state)]
    if values and isinstance(values[0], dict):
        return {k: np.array([v[k] for v in values], dtype=float) for k in values[0]}
    return np.array(values, dtype=float)


def _interval(values, level):
    ok, tail = values[~np.isnan(values)], (1 - level) / 2 * 100
    if not ok.size:
        return np.nan, np.nan
    return float(np.percentile(ok, tail)), float(np.percentile(ok, 100 - tail))


def bootstrap_interval(statistic, n, groups=None, strata=None, n_boot=1000, random_state=None,
                       level=0.95):
    """Percentile interval of ``statistic(idx)`` (a float, or a dict of floats); draws where it
    is undefined (NaN) are left out."""
    if not 0 < level < 1:
        raise ModelsError(f"level must lie in (0, 1), got {level!r}")
    d = _draws(statistic, n, groups, strata, n_boot, random_state)
    if isinstance(d, dict):
        return {k: _interval(v, level) for k, v in d.items()}
    return _interval(d, level)


def auc(is_pos, score) -> float:
    """ROC AUC (Mann–Whitney, ties count half); NaN when a class is absent."""
    return _auc(*_binary(is_pos, score))


def subgroup_labels(values, bands=None) -> np.ndarray:
    """Subgroup names for a clinical column: categories as strings, numbers in declared bands or
    quartiles (tied quartile edges merge bands; four or fewer distinct numbers name themselves)."""
    arr = np.asarray(values, dtype=object).ravel()
    missing = np.array([x.strip() == "" if isinstance(x, str) else bool(pd.isna(x)) for x in arr],
                       dtype=bool)
    present = arr[~missing]
    out = np.full(len(arr), "missing", dtype=object)
    numeric = present.size and all(isinstance(x, numbers.Real) and not isinstance(x, bool)
                                   for x in present)
    if not numeric:
        out[~missing] = [str(x) for x in present]
        return out
    x = present.astype(float)
    if bands is None:
        if np.unique(x).size <= 4:
            out[~missing] = [f"{v:g}" for v in x]
            return out
        edges = np.unique(np.quantile(x, [0.25, 0.5, 0.75]))
        edges = edges[edges > x.min()]
        bounds = np.r_[x.min(), edges, x.max()]
        names = [f"Q{i + 1} ({bounds[i]:g}–{bounds[i + 1]:g})" for i in range(len(edges) + 1)]
    else:
        edges = np.atleast_1d(np.asarray(bands, dtype=float))
        if edges.ndim != 1 or not edges.size or not np.isfinite(edges).all() \
                or (np.diff(edges) <= 0).any():
            raise ModelsError(f"bands must be increasing finite edges such as [50, 65], "
                              f"got {bands!r}")
        names = [f"<{edges[0]:g}"] + [f"{a:g}–{b:g}" for a, b in pairwise(edges)] \
            + [f">={edges[-1]:g}"]
    out[~missing] = np.asarray(names, dtype=object)[np.searchsorted(edges, x, side="right")]
    return out


def subgroup_table(is_pos, score, labels, threshold, groups=None, min_n=20, n_boot=1000,
                   random_state=None, level=0.95) -> pd.DataFrame:
    """Per-subgroup AUC, sensitivity and specificity at the fixed threshold, with intervals, and
    a bootstrap test of whether the subgroup's AUC differs from that of the other rows.

    One resample stream serves every subgroup (patient-level when ``groups`` is given), so the
    difference subgroup − rest is measured on the same resamples as the intervals.
    """
    y, s = _binary(is_pos, score)
    lab = np.asarray(labels).astype(str)
    if lab.shape != y.shape:
        raise ModelsError(f"expected one label per row ({len(y)}), got shape {lab.shape}")
    pred = s >= threshold
    rows, masks = [], {}
    for name in np.unique(lab).tolist():
        m = lab == name
        n, n_pos = int(m.sum()), int(y[m].sum())
        too_few = n < min_n or n_pos in (0, n)
        rows.append({"subgroup": name, "n": n, "n_pos": n_pos, "prevalence": n_pos / n,
                     "too_few": too_few})
        if not too_few:
            masks[name] = m

    def statistic(idx):
        yi, si, pi = y[idx], s[idx], pred[idx]
        out = {}
        for name, m in masks.items():
            inside = m[idx]
            a = _auc(yi[inside], si[inside])
            out[name, "auc"] = a
            out[name, "sensitivity"] = _ratio(np.sum(pi & yi & inside), np.sum(yi & inside))
            out[name, "specificity"] = _ratio(np.sum(~pi & ~yi & inside), np.sum(~yi & inside))
            out[name, "auc_diff"] = a - _auc(yi[~inside], si[~inside])
        return out

    point = statistic(np.arange(len(y)))
    draws = _draws(statistic, len(y), groups, y, n_boot, random_state) if masks else {}
    for row in rows:
        name = row["subgroup"]
        live = name in masks
        for key, low, high in _INTERVALS:
            row[key] = point[name, key] if live else np.nan
            row[low], row[high] = _interval(draws[name, key], level) if live else (np.nan, np.nan)
        d = draws[name, "auc_diff"] if live else np.array([])
        d = d[~np.isnan(d)]
        p = 2 * min(np.mean(d <= 0), np.mean(d >= 0)) if d.size else np.nan
        row["p_heterogeneity"] = float(min(p, 1.0))
        # a difference from a "rest" too small to estimate an AUC on is no evidence either way
        rest = lab != name
        rest_ok = rest.sum() >= min_n and 0 < y[rest].sum() < rest.sum()
        row["flagged"] = bool(live and rest_ok and p < 0.05)
    return pd.DataFrame(rows, columns=_COLUMNS)
