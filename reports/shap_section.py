"""The SHAP section as plain data: grouped Shapley values of the stack, a tree learner's beeswarm and
the explain stage's occlusion maps (its builder is registered in ``sections.SECTIONS``).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import attribution, plots
from .shapley import waterfall_steps
from .trees import beeswarm_rows

log = logging.getLogger(__name__)


def shap_summary(result, case_label):
    """Grouped Shapley values: mean |attribution| per group and a table of a few held-out cases.

    result: ``attribution.stack_shap``'s dict {"groups", "outputs", "phi" (cases, groups, outputs),
    "base", "fx", "cases", "y_true", "predicted", "mistake", "method", "n_background"}, or None.
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


def occlusion_summary(occlusion, case_label):
    """The explain stage's occlusion maps, one panel per (case, modality), when they belong to this run.

    occlusion: ``ReportInputs.occlusion``; its maps are [{"case_id", "modality", "y_true", "predicted",
    "output", "baseline", "image" (uint8 2-D), "drops" (grid x grid), "backbones"}] in the order the
    cases were chosen.
    """
    if occlusion["status"] != "ok":
        return {"status": occlusion["status"], "command": occlusion["command"], "panels": []}, {}
    meta, maps = occlusion["meta"], occlusion["maps"]
    panels, flat = [], []
    for m in maps:
        case = case_label(m["case_id"])
        drops = np.asarray(m["drops"], float)
        where = m["modality"] + (f" ({m['view']} view)" if m.get("view") else "")
        title = f"{case}, {where}"
        subtitle = [f"true {m['y_true']}, predicted {m['predicted']}", f"P({m['output']}) = {m['baseline']:.3f}"]
        panels.append(plots.occlusion_svg(m["image"], drops, title, subtitle))
        flat.append({"case": case, "modality": where, "y_true": m["y_true"], "predicted": m["predicted"],
                     "output": m["output"], "baseline": m["baseline"], "max_drop": float(np.nanmax(drops)),
                     "min_drop": float(np.nanmin(drops))})
    data = {"status": "ok", "command": occlusion["command"], "panels": panels, "grid": meta["settings"]["grid"],
            "n_cases": len(meta["cases"]), "fill": meta["settings"]["fill"],
            "backbones": sorted({b for m in maps for b in m["backbones"]})}
    return data, {"occlusion": pd.DataFrame(flat)}


def shap_section(inputs, context):
    """Grouped SHAP of the stack, the tree beeswarm (both only with ``settings.shap``) and occlusion."""
    settings, tables = inputs.settings, {}
    started = time.perf_counter()
    result = None
    if settings.shap:
        with threadpool_limits(limits=1):   # threaded BLAS is far slower here on small batches (see fit)
            result = attribution.stack_shap(inputs.load_model("stack"), inputs.frame, inputs.is_test,
                                            inputs.holdout, inputs.seed)
    stack, more = shap_summary(result, context.label)
    tables.update(more)
    trees = None
    if settings.shap:
        classes = inputs.metrics["classes"]
        positive = inputs.metrics["positive"] if inputs.metrics["positive"] is not None else classes[-1]
        learner, tree_result = attribution.saved_tree_shap(inputs.load_model, inputs.frame, inputs.is_test,
                                                           inputs.seed, positive)
        trees, more = tree_summary(tree_result, learner, inputs.layout["clinical"], settings.tree_top_k)
        tables.update(more)
    log.info("report: SHAP in %.1f s", time.perf_counter() - started)
    occlusion, more = occlusion_summary(inputs.occlusion, context.label)
    tables.update(more)
    skipped = "turned off" if not settings.shap else "no tree learner (xgb, rf, et) was saved in this run"
    return {"stack": stack, "trees": trees, "trees_skipped": skipped, "occlusion": occlusion}, tables
