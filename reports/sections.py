"""The report's sections, in one registry (``SECTIONS``): each builds plain data for its template
partial (templates/sections/<id>.html.j2) and a table (DataFrame) per export.

Every builder is ``build(inputs, context) -> (data, {export name: DataFrame})`` on a ``ReportInputs``
already loaded; nothing is refitted or read. Adding a section: its builder and entry here, its partial.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from . import plots, stats
from .evaluation_sections import clinical_evaluation, external_validation, guideline_summary
from .shap_section import shap_section

LOWER_IS_BETTER = {"brier"}
METRIC_ORDER = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1",
                "roc_auc", "pr_auc", "mcc", "brier")


def _num(v):
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)


def proba_columns(frame, classes):
    return frame[[f"proba:{c}" for c in classes]].to_numpy(float)


def main_learners(metrics):
    return [n for n, r in metrics["learners"].items() if r.get("ablation") is None]


def study_summary(inputs, context):
    """Cases per class, modality presence, missing clinical values, exclusions, splits, warnings."""
    meta = inputs.design_meta
    s = meta["summary"]
    n = s["n_cases"]
    classes = [{"name": c, "n": s["class_counts"].get(c, 0), "test": s.get("test_class_counts", {}).get(c, 0)}
               for c in meta["classes"]]
    modalities = sorted({b["modality"] for b in meta["blocks"].values()} | set(s.get("missing_modality", {})))
    modality_rows = [{"modality": m, "missing": s.get("missing_modality", {}).get(m, 0),
                      "present": n - s.get("missing_modality", {}).get(m, 0)} for m in modalities]
    clinical_rows = [{"column": c, "kind": k, "missing": s.get("missing_clinical", {}).get(c, 0)}
                     for c, k in meta["layout"]["clinical"].items()]
    excluded = [{"case": context.label(e["case_id"]), "reason": e["reason"]} for e in meta.get("excluded", [])]
    warnings = stats.leak_warnings(inputs.clinical, inputs.y, meta["layout"]["clinical"])
    notes = [f"Clinical column '{e['column']}' was left out of the design by fuse: {e['reason']}."
             for e in meta.get("excluded_columns", [])]
    tables = {"classes": pd.DataFrame(classes), "modalities": pd.DataFrame(modality_rows),
              "missing_clinical": pd.DataFrame(clinical_rows, columns=["column", "kind", "missing"]),
              "excluded": pd.DataFrame(excluded, columns=["case", "reason"])}
    return {"n_cases": n, "classes": classes, "modalities": modality_rows, "clinical": clinical_rows,
            "excluded": excluded, "n_train": s.get("n_train"), "n_test": s.get("n_test"),
            "fold_sizes": s.get("fold_sizes", []), "warnings": warnings, "notes": notes}, tables


def comparison(inputs, context):
    """Every main learner and the stack: CV mean ± sd and held-out value with its 95% interval."""
    metrics, names = inputs.metrics, context.learners
    metric_names = [m for m in METRIC_ORDER if any(m in metrics["learners"][n]["holdout"] for n in names)]
    best = {}
    for kind in ("cv", "holdout"):
        for m in metric_names:
            vals = {n: _num(metrics["learners"][n]["cv"].get(m, {}).get("mean") if kind == "cv"
                            else metrics["learners"][n]["holdout"].get(m)) for n in names}
            vals = {n: v for n, v in vals.items() if v is not None}
            if vals:
                pick = min if m in LOWER_IS_BETTER else max
                target = pick(vals.values())
                best[(kind, m)] = {n for n, v in vals.items() if v == target}
    rows, flat = [], []
    for n in names:
        rec = metrics["learners"][n]
        cells = []
        for m in metric_names:
            cv = rec["cv"].get(m, {})
            low, high = (rec.get("holdout_ci", {}).get(m) or (None, None))
            cells.append({"metric": m, "cv_mean": _num(cv.get("mean")), "cv_sd": _num(cv.get("sd")),
                          "holdout": _num(rec["holdout"].get(m)), "low": _num(low), "high": _num(high),
                          "best_cv": n in best.get(("cv", m), ()), "best_holdout": n in best.get(("holdout", m), ())})
            flat.append({"learner": n, "metric": m, "cv_mean": cells[-1]["cv_mean"], "cv_sd": cells[-1]["cv_sd"],
                         "holdout": cells[-1]["holdout"], "holdout_ci_low": cells[-1]["low"],
                         "holdout_ci_high": cells[-1]["high"]})
        fit_time = rec.get("fit_time", {})
        rows.append({"learner": n, "cells": cells, "fit_time": _num(fit_time.get("final")),
                     "fold_time": _num(fit_time.get("cv_fold_mean")), "notes": rec.get("notes", []),
                     "warnings": rec.get("warnings", [])})
    folds = cv_fold_rows(metrics, names)
    return {"metrics": metric_names, "rows": rows, "folds": folds}, \
        {"comparison": pd.DataFrame(flat), "cv_folds": pd.DataFrame(folds, columns=list(FOLD_COLUMNS))}


FOLD_COLUMNS = ("learner", "repeat", "fold", "n_train", "n_val", "roc_auc", "auc_ci_low", "auc_ci_high",
                "balanced_accuracy", "brier", "rank_correlation", "flags")


def cv_fold_rows(metrics, names):
    """One row per learner × CV fold: its AUC with the fold's bootstrap interval and its flags
    (none recorded for a fit older than the per-fold checks)."""
    rows = []
    for n in names:
        for f in metrics["learners"][n].get("folds", []):
            low, high = f.get("auc_ci") or (None, None)
            m = f["metrics"]
            rows.append({"learner": n, "repeat": f["repeat"], "fold": f["fold"], "n_train": f["n_train"],
                         "n_val": f["n_val"], "roc_auc": _num(m.get("roc_auc")), "auc_ci_low": _num(low),
                         "auc_ci_high": _num(high), "balanced_accuracy": _num(m.get("balanced_accuracy")),
                         "brier": _num(m.get("brier")), "rank_correlation": _num(f.get("rank_correlation")),
                         "flags": " ".join(f.get("flags", []))})
    return rows


def curves(inputs, context):
    """ROC and PR curves (held-out and pooled CV), calibration (pooled CV), confusion matrices."""
    classes, positive = inputs.metrics["classes"], inputs.metrics["positive"]
    names, holdout, cv = context.learners, inputs.holdout, inputs.cv
    panels = []
    for target in stats.curve_targets(classes, positive):
        j = classes.index(target)
        for split, frame in (("held-out", holdout), ("pooled CV", cv)):
            roc, pr = [], []
            for n in names:
                part = frame[frame.learner == n]
                c = stats.roc_pr_curves(part.y_true.to_numpy(), proba_columns(part, classes)[:, j], target) \
                    if len(part) else None
                if c is None:
                    continue
                roc.append({"name": f"{n} ({c['auc']:.3f})", "x": c["fpr"], "y": c["tpr"]})
                pr.append({"name": n, "x": c["recall"], "y": c["precision"]})
            if roc:
                panels.append(plots.line_chart(roc, f"ROC, {target} vs rest, {split}", "false positive rate",
                                               "true positive rate", diagonal=True))
                panels.append(plots.line_chart(pr, f"Precision-recall, {target}, {split}", "recall",
                                               "precision"))
        cal = []
        for n in names:
            part = cv[cv.learner == n]
            if len(part):
                c = stats.calibration(part.y_true.to_numpy(), proba_columns(part, classes)[:, j], target)
                cal.append({"name": n, "x": c["predicted"], "y": c["observed"], "markers": True})
        if cal:
            panels.append(plots.line_chart(cal, f"Calibration, {target}, pooled CV", "mean predicted probability",
                                           "observed fraction", diagonal=True))
    confusions, rows = [], []
    for n in names:
        part = holdout[holdout.learner == n]
        pred = np.asarray(classes)[proba_columns(part, classes).argmax(1)]
        matrix = stats.confusion(part.y_true.to_numpy(), pred, classes)
        confusions.append(plots.confusion_svg(matrix, classes, f"{n}, held-out"))
        rows += [{"learner": n, "true": t, **{f"pred:{c}": matrix[i][k] for k, c in enumerate(classes)}}
                 for i, t in enumerate(classes)]
    return {"panels": panels, "confusions": confusions}, {"confusion": pd.DataFrame(rows)}


def significance(inputs, context):
    """McNemar (Holm) between every pair of main learners; DeLong of each AUC against the best."""
    classes, positive, holdout = inputs.metrics["classes"], inputs.metrics["positive"], inputs.holdout
    names = [n for n in context.learners if (holdout.learner == n).any()]
    ref = holdout[holdout.learner == names[0]].set_index("case_id")
    y = ref.y_true.to_numpy()
    preds, scores = {}, {}
    target = positive if positive is not None else classes[-1]
    for n in names:
        part = holdout[holdout.learner == n].set_index("case_id").loc[ref.index]
        p = proba_columns(part, classes)
        preds[n] = np.asarray(classes)[p.argmax(1)]
        scores[n] = p[:, classes.index(target)]
    mc = stats.mcnemar_matrix(y, preds)
    dl = stats.delong_vs_best(y, scores, target)
    tables = {"mcnemar": pd.DataFrame(mc["pairs"]), "delong": pd.DataFrame(dl["rows"])}
    return {"mcnemar": mc, "delong": dl, "multiclass": len(classes) > 2}, tables


def ablation(inputs, context):
    """The stack refitted on subsets of the blocks, beside the full stack: held-out AUC with intervals."""
    rows = []
    for n, rec in inputs.metrics["learners"].items():
        if rec.get("ablation") is None and n != "stack":
            continue
        low, high = rec.get("holdout_ci", {}).get("roc_auc") or (None, None)
        rows.append({"learner": n, "ablation": rec.get("ablation") or "full stack",
                     "cv_auc": _num(rec["cv"].get("roc_auc", {}).get("mean")),
                     "cv_auc_sd": _num(rec["cv"].get("roc_auc", {}).get("sd")),
                     "holdout_auc": _num(rec["holdout"].get("roc_auc")), "low": _num(low), "high": _num(high)})
    svg = None
    if len(rows) > 1:
        svg = plots.bar_chart([r["ablation"] for r in rows], [r["holdout_auc"] for r in rows],
                              "Held-out ROC AUC by ablation (95% interval)", "ROC AUC",
                              lows=[r["low"] for r in rows], highs=[r["high"] for r in rows])
    return {"rows": rows, "svg": svg}, {"ablation": pd.DataFrame(rows)}


def embeddings(inputs, context):
    """Explained variance of PCA per block (the diagnostics were fitted on the training rows only)."""
    rows, series, pca_components = [], [], inputs.pca_components
    for block, d in inputs.pca_diagnostics.items():
        ratio = np.asarray(d.get("ratio", []), float)
        cum = np.cumsum(ratio)
        series.append({"name": block, "x": list(range(1, len(cum) + 1)), "y": cum.tolist()})
        rows.append({"block": block, "n_features": d.get("n_features"), "n_train_rows": d.get("n_train_rows"),
                     **{f"components_for_{k}": v for k, v in d.get("components_for", {}).items()},
                     "kept": pca_components,
                     "variance_kept": float(cum[int(pca_components) - 1])
                     if isinstance(pca_components, int) and 0 < pca_components <= len(cum) else None})
    svg = None
    if series:
        top = max(len(s["x"]) for s in series)
        svg = plots.line_chart(series, "Cumulative explained variance per block", "components",
                               "explained variance", x_range=(0, top), y_range=(0, 1))
    return {"rows": rows, "svg": svg, "kept": pca_components}, {"pca": pd.DataFrame(rows)}


def provenance(inputs, context):
    """Config, versions, seed, weights identities, fingerprints, and the commands that reproduce the run."""
    weights = [{"block": b, "weights": i.get("weights"), "identity": i.get("weights_identity"),
                "fallback": bool(i.get("weights_fallback")), "fingerprint": i.get("fingerprint")}
               for b, i in inputs.design_meta.get("blocks", {}).items()]
    p = inputs.provenance
    return {"commands": p["commands"], "weights": weights, "seed": p["seed"], "fingerprints": p["fingerprints"],
            "versions": p["versions"], "config": p["config"]}, {"weights": pd.DataFrame(weights)}


@dataclass(frozen=True)
class Section:
    id: str         # the page anchor and the partial's name: templates/sections/<id>.html.j2
    title: str
    build: Callable  # (ReportInputs, Context) -> (data for the partial, {export name: DataFrame})


SECTIONS = [
    Section("summary", "Study summary", study_summary),
    Section("comparison", "Classifier comparison", comparison),
    Section("curves", "Curves", curves),
    Section("significance", "Significance", significance),
    Section("ablations", "Ablations", ablation),
    Section("embeddings", "Embeddings", embeddings),
    Section("clinical", "Clinical evaluation", clinical_evaluation),
    Section("external", "External validation", external_validation),
    Section("shap", "SHAP attributions", shap_section),
    Section("guideline", "Reporting guidelines", guideline_summary),
    Section("provenance", "Provenance", provenance),
]


