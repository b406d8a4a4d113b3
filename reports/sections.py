"""The report's sections as plain data: dicts for the template plus a table (DataFrame) per export.

Inputs are what the stages wrote, already loaded (dicts and frames); nothing is refitted or read.
"""
from __future__ import annotations

import shlex

import numpy as np
import pandas as pd

from . import plots, stats
from .shapley import waterfall_steps
from .trees import beeswarm_rows

LOWER_IS_BETTER = {"brier"}
METRIC_ORDER = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1",
                "roc_auc", "pr_auc", "mcc", "brier")


def _num(v):
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)


def proba_columns(frame, classes):
    return frame[[f"proba:{c}" for c in classes]].to_numpy(float)


def main_learners(metrics):
    return [n for n, r in metrics["learners"].items() if r.get("ablation") is None]


def study_summary(meta, clinical, y, case_label):
    """Cases per class, modality presence, missing clinical values, exclusions, splits, warnings."""
    s = meta["summary"]
    n = s["n_cases"]
    classes = [{"name": c, "n": s["class_counts"].get(c, 0), "test": s.get("test_class_counts", {}).get(c, 0)}
               for c in meta["classes"]]
    modalities = sorted({b["modality"] for b in meta["blocks"].values()} | set(s.get("missing_modality", {})))
    modality_rows = [{"modality": m, "missing": s.get("missing_modality", {}).get(m, 0),
                      "present": n - s.get("missing_modality", {}).get(m, 0)} for m in modalities]
    clinical_rows = [{"column": c, "kind": k, "missing": s.get("missing_clinical", {}).get(c, 0)}
                     for c, k in meta["layout"]["clinical"].items()]
    excluded = [{"case": case_label(e["case_id"]), "reason": e["reason"]} for e in meta.get("excluded", [])]
    warnings = stats.leak_warnings(clinical, y, meta["layout"]["clinical"])
    tables = {"classes": pd.DataFrame(classes), "modalities": pd.DataFrame(modality_rows),
              "missing_clinical": pd.DataFrame(clinical_rows, columns=["column", "kind", "missing"]),
              "excluded": pd.DataFrame(excluded, columns=["case", "reason"])}
    return {"n_cases": n, "classes": classes, "modalities": modality_rows, "clinical": clinical_rows,
            "excluded": excluded, "n_train": s.get("n_train"), "n_test": s.get("n_test"),
            "fold_sizes": s.get("fold_sizes", []), "warnings": warnings,
            "banner": stats.weights_fallback_banner(meta.get("blocks", {}))}, tables


def comparison(metrics):
    """Every main learner and the stack: CV mean ± sd and held-out value with its 95% interval."""
    names = main_learners(metrics)
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
                     "fold_time": _num(fit_time.get("cv_fold_mean")), "notes": rec.get("notes", [])})
    return {"metrics": metric_names, "rows": rows}, pd.DataFrame(flat)


def curves(metrics, holdout, cv):
    """ROC and PR curves (held-out and pooled CV), calibration (pooled CV), confusion matrices."""
    classes, positive = metrics["classes"], metrics["positive"]
    names = main_learners(metrics)
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
    return {"panels": panels, "confusions": confusions}, pd.DataFrame(rows)


def significance(metrics, holdout):
    """McNemar (Holm) between every pair of main learners; DeLong of each AUC against the best."""
    classes, positive = metrics["classes"], metrics["positive"]
    names = [n for n in main_learners(metrics) if (holdout.learner == n).any()]
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


def ablation(metrics):
    """The stack refitted on subsets of the blocks, beside the full stack: held-out AUC with intervals."""
    rows = []
    for n, rec in metrics["learners"].items():
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
    return {"rows": rows, "svg": svg}, pd.DataFrame(rows)


def embeddings(meta, pca_components):
    """Explained variance of PCA per block (fitted on the training rows by fuse's diagnostics)."""
    rows, series = [], []
    for block, d in meta.get("pca_diagnostics", {}).items():
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
    return {"rows": rows, "svg": svg, "kept": pca_components}, pd.DataFrame(rows)


def shap_summary(result, case_label):
    """Grouped Shapley values: mean |attribution| per group and a table of a few held-out cases.

    result: {"groups", "outputs", "phi" (cases, groups, outputs), "base", "fx", "cases", "y_true",
             "predicted", "mistake", "method", "n_background"}.
    """
    if result is None:
        return None, {}
    phi = np.asarray(result["phi"])
    groups, outputs = result["groups"], result["outputs"]
    mean_abs = np.abs(phi).mean(axis=0)                       # groups x outputs
    total = mean_abs.sum(axis=1)
    order = np.argsort(-total, kind="mergesort")
    svg = plots.bar_chart([groups[i] for i in order], [total[i] for i in order],
                          "Mean |attribution| per group" + (" (summed over classes)" if len(outputs) > 1 else ""),
                          "mean |SHAP value| on predicted probability", horizontal=True)
    cases, flat = [], []
    for c in range(len(result["cases"])):
        out = result["explained_output"][c]
        k = outputs.index(out)
        attributions = [float(phi[c, g, k]) for g in range(len(groups))]
        row = {"case": case_label(result["cases"][c]), "y_true": result["y_true"][c],
               "predicted": result["predicted"][c], "output": out, "fx": float(result["fx"][c, k]),
               "base": float(result["base"][k]), "mistake": bool(result["mistake"][c]),
               "attributions": attributions}
        row["waterfall"] = plots.waterfall_svg(
            waterfall_steps(row["base"], attributions, groups), row["base"], row["fx"],
            f"{row['case']}: true {row['y_true']}, predicted {row['predicted']}",
            f"P({out}), grouped SHAP")
        cases.append(row)
        flat.append({k2: v for k2, v in row.items() if k2 not in ("attributions", "waterfall")} |
                    {f"shap:{g}": a for g, a in zip(groups, attributions)})
    mean_rows = [{"group": groups[i], **{f"mean_abs:{o}": float(mean_abs[i, j]) for j, o in enumerate(outputs)}}
                 for i in order]
    data = {"groups": groups, "svg": svg, "cases": cases, "mean_rows": mean_rows, "outputs": outputs,
            "method": result["method"], "n_background": result["n_background"]}
    return data, {"shap_mean": pd.DataFrame(mean_rows), "shap_cases": pd.DataFrame(flat)}


def tree_summary(result, learner, clinical, top_k=12):
    """Beeswarm(s) of one tree learner's TreeExplainer SHAP on held-out rows: the positive class when
    binary, one panel per class otherwise. result: ``trees.tree_shap``'s dict, or None."""
    if result is None:
        return None, {}
    space = result["space"]
    panels, flat = [], []
    for output in result["outputs"]:
        rows = beeswarm_rows(result, output, clinical, top_k)
        what = f"log-odds of {output}" if space == "log-odds" else f"P({output})"
        panels.append(plots.beeswarm_svg(rows, f"{learner}: SHAP on {what}, held-out cases",
                                         f"SHAP value ({what})"))
        flat += [{"output": output, "feature": r["name"], "mean_abs_shap": float(np.abs(r["shap"]).mean())}
                 for r in rows]
    data = {"learner": learner, "space": space, "panels": panels, "n_rows": int(len(result["Z"])),
            "top_k": top_k, "additivity": result["additivity"]}
    return data, {"tree_shap": pd.DataFrame(flat)}


def occlusion_summary(maps, case_label):
    """Occlusion maps from the `explain` stage: one panel per (case, modality).

    maps: [{"case_id", "modality", "y_true", "predicted", "output", "baseline", "image" (uint8 2-D),
    "drops" (grid x grid)}] in the order the cases were chosen.
    """
    panels, flat = [], []
    for m in maps:
        case = case_label(m["case_id"])
        drops = np.asarray(m["drops"], float)
        title = f"{case}, {m['modality']}"
        subtitle = [f"true {m['y_true']}, predicted {m['predicted']}", f"P({m['output']}) = {m['baseline']:.3f}"]
        panels.append(plots.occlusion_svg(m["image"], drops, title, subtitle))
        flat.append({"case": case, "modality": m["modality"], "y_true": m["y_true"], "predicted": m["predicted"],
                     "output": m["output"], "baseline": m["baseline"], "max_drop": float(np.nanmax(drops)),
                     "min_drop": float(np.nanmin(drops))})
    return panels, pd.DataFrame(flat)


def stage_command(stage, study_path, overrides=()):
    """The command line of one stage on this run: the study file plus the `KEY=VALUE` settings the
    run used beyond it (command-line flags)."""
    study = shlex.quote(str(study_path)) if study_path else "<study.yaml>"
    return f"python run_pipeline.py {stage} -c {study}" + "".join(f" --set {shlex.quote(o)}" for o in overrides)


def provenance(meta, metrics, study_config, study_path, overrides=()):
    """Config, versions, seed, weights identities, fingerprints, and the commands that reproduce the run."""
    commands = [stage_command(stage, study_path, overrides)
                for stage in ("extract", "fuse", "fit", "explain", "report")]
    weights = [{"block": b, "weights": i.get("weights"), "identity": i.get("weights_identity"),
                "fallback": bool(i.get("weights_fallback")), "fingerprint": i.get("fingerprint")}
               for b, i in meta.get("blocks", {}).items()]
    return {"commands": commands, "weights": weights, "seed": metrics.get("seed"),
            "fingerprints": {"design": meta.get("fingerprint"), "fit": metrics.get("fingerprint")},
            "versions": metrics.get("versions") or meta.get("versions", {}), "config": study_config}, \
        {"weights": pd.DataFrame(weights)}
