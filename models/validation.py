"""The clinical evaluation of fitted models on one scored set (the held-out split or an external
cohort): metrics with patient-level intervals, the operating point frozen on training, read-offs at a
fixed sensitivity or specificity, calibration, the decision curve and subgroups.

Probabilities go in, plain dicts and frames come out; nothing here fits a classifier. Operating
points are chosen once, on the training split's out-of-fold predictions (``operating_points``), and
every set is then scored at them unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import clinical
from .metrics import METRICS, metrics_of_rows


@dataclass(frozen=True)
class EvaluationSettings:
    n_boot: int = 1000
    seed: int = 0
    level: float = 0.95
    fixed_specificity: float = 0.90
    fixed_sensitivity: float = 0.90
    subgroup_min_n: int = 20


def targets(classes, positive):
    """The classes scored one-vs-rest: the positive class of a binary study, else every class."""
    if len(classes) == 2:
        return [positive if positive is not None else classes[1]]
    return list(classes)


def oof_probabilities(cv_frame, learner, classes):
    """A learner's out-of-fold probabilities on the training split, averaged over CV repeats."""
    rows = cv_frame[cv_frame["learner"] == learner]
    columns = [f"proba:{c}" for c in classes]
    mean = rows.groupby("case_id", sort=True)[columns].mean()
    y = rows.groupby("case_id", sort=True)["y_true"].first().astype(str)
    return y.to_numpy(), mean.to_numpy(float)


def operating_points(y, proba, classes, positive, op):
    """{target class: the chosen threshold and its training sensitivity/specificity}."""
    return {t: clinical.choose_threshold(np.asarray(y) == t, proba[:, classes.index(t)], op)
            for t in targets(classes, positive)}


def _interval(pair):
    low, high = pair
    return [None if not np.isfinite(low) else float(low), None if not np.isfinite(high) else float(high)]


def _clean(v):
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v


def at_operating_point(is_pos, score, chosen, groups, s):
    """Sensitivity, specificity, PPV, NPV (with intervals) and the confusion counts at a frozen threshold."""
    t = chosen["threshold"]
    point = clinical.threshold_metrics(is_pos, score, t)
    names = ("sensitivity", "specificity", "ppv", "npv")
    ci = clinical.bootstrap_interval(
        lambda idx: {k: clinical.threshold_metrics(is_pos[idx], score[idx], t)[k] for k in names},
        len(is_pos), groups=groups, strata=is_pos, n_boot=s.n_boot, random_state=s.seed, level=s.level)
    return {"threshold": float(t), "rule": chosen["rule"], "value": chosen.get("value"),
            **{k: _clean(float(point[k])) for k in names}, **{f"{k}_ci": _interval(ci[k]) for k in names},
            "confusion": {k: int(point[k]) for k in ("tp", "fp", "tn", "fn")}}


def read_offs(is_pos, score, groups, s):
    """Sensitivity at the fixed specificity and specificity at the fixed sensitivity, with intervals."""
    def stat(idx):
        return {"sens": clinical.sensitivity_at_specificity(is_pos[idx], score[idx], s.fixed_specificity),
                "spec": clinical.specificity_at_sensitivity(is_pos[idx], score[idx], s.fixed_sensitivity)}

    point, ci = stat(np.arange(len(is_pos))), clinical.bootstrap_interval(
        stat, len(is_pos), groups=groups, strata=is_pos, n_boot=s.n_boot, random_state=s.seed, level=s.level)
    return {"sensitivity_at_specificity": {"at": s.fixed_specificity, "value": _clean(float(point["sens"])),
                                           "ci": _interval(ci["sens"])},
            "specificity_at_sensitivity": {"at": s.fixed_sensitivity, "value": _clean(float(point["spec"])),
                                           "ci": _interval(ci["spec"])}}


def learner_evaluation(y, proba, classes, positive, groups, points, s):
    """Every metric with its patient-level interval, calibration and operating-point results."""
    stat = metrics_of_rows(y, proba, classes, positive)
    n = len(y)
    point = stat(np.arange(n))
    ci = clinical.bootstrap_interval(stat, n, groups=groups, strata=np.asarray(y), n_boot=s.n_boot,
                                     random_state=s.seed, level=s.level)
    per_target = {}
    for t in targets(classes, positive):
        is_pos, score = np.asarray(y) == t, proba[:, classes.index(t)]
        if is_pos.all() or not is_pos.any():
            per_target[t] = {"note": f"no {'other' if is_pos.all() else t} cases: nothing to score one-vs-rest"}
            continue
        per_target[t] = {"operating_point": at_operating_point(is_pos, score, points[t], groups, s),
                         **read_offs(is_pos, score, groups, s),
                         "calibration": {k: _clean(float(v)) for k, v in
                                         clinical.calibration_intercept_slope(is_pos, score).items()}}
    return {"metrics": {m: _clean(float(point[m])) for m in METRICS},
            "ci": {m: _interval(ci[m]) for m in METRICS}, "targets": per_target}


def auc_with_draws(y, proba, classes, positive, groups, s):
    """A set's AUC and its bootstrap draws (patients resampled), for differences between independent
    sets; made once per set and learner."""
    stat = metrics_of_rows(y, proba, classes, positive, ["roc_auc"])
    draws = np.asarray([stat(idx)["roc_auc"] for idx in clinical.resample_indices(
        len(y), groups=groups, strata=np.asarray(y), n_boot=s.n_boot, random_state=s.seed)], dtype=float)
    return stat(np.arange(len(y)))["roc_auc"], draws


def auc_difference(internal, external, classes, positive, s):
    """External minus internal AUC, with the percentile interval of independent bootstrap draws of
    the two sets (``internal``: ``auc_with_draws`` of the held-out split; ``external``: its
    ``(y, proba, groups)``)."""
    (point_i, draws_i), (point_e, draws_e) = internal, auc_with_draws(*external[:2], classes, positive,
                                                                      external[2], s)
    diff = draws_e - draws_i
    diff = diff[np.isfinite(diff)]
    tail = (1 - s.level) / 2 * 100
    ci = [float(np.percentile(diff, tail)), float(np.percentile(diff, 100 - tail))] if diff.size else [None, None]
    return {"value": _clean(float(point_e - point_i)), "ci": ci}


def subgroups(is_pos, score, columns, threshold, groups, s, bands=None):
    """One subgroup table per column ({column: values}), at the frozen threshold."""
    bands = bands or {}
    frames = []
    for column, values in columns.items():
        labels = clinical.subgroup_labels(values, bands.get(column))
        table = clinical.subgroup_table(is_pos, score, labels, threshold, groups=groups, min_n=s.subgroup_min_n,
                                        n_boot=s.n_boot, random_state=s.seed, level=s.level)
        table.insert(0, "column", column)
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def withheld(frame, layout, modality):
    """Design rows with one modality withheld, exactly as fuse writes a case lacking it: its block
    columns NaN and its missing-modality indicator 1 (the fitted pipeline imputes them)."""
    out = frame.copy()
    for block, columns in layout["blocks"].items():
        if layout["block_indicators"].get(block) == f"missing:{modality}":
            out[columns] = np.nan
    out[f"missing:{modality}"] = 1.0
    return out
