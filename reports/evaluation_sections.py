"""The sections made from the evaluate stage's results: the clinical evaluation of the held-out split,
external validation per cohort, and the reporting-guideline summary.

``inputs.evaluation`` is {"status": "ok" | "stale" | "missing", "command", "data" (evaluation.json),
"tables": {set name: {artifact: DataFrame}}}; a section whose results are not there says how to make them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import plots, stats


def _num(v):
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)


def _status(inputs):
    ev = inputs.evaluation or {"status": "missing", "command": ""}
    return ev, ev.get("status") == "ok" and ev.get("data") is not None


def _decision_chart(table, target, where):
    part = table[table.target == target]
    if part.empty:
        return None
    top = max(0.05, float(part.net_benefit.max()) * 1.1)
    low = -0.05
    series = [{"name": m, "x": g.threshold.tolist(), "y": np.clip(g.net_benefit.to_numpy(), low, top).tolist()}
              for m, g in part.groupby("model", sort=False)]
    return plots.line_chart(series, f"Decision curve, {target}, {where}", "threshold probability", "net benefit",
                            x_range=(0, 1), y_range=(low, top))


def _records(table):
    return [{k: (_num(v) if isinstance(v, (float, np.floating)) else v) for k, v in r.items()}
            for r in table.to_dict(orient="records")] if table is not None and len(table) else []


def _readoffs(set_data, learners):
    rows = []
    for n in learners:
        for t, rec in set_data["learners"][n]["targets"].items():
            if "note" in rec:
                continue
            se, sp, cal = rec["sensitivity_at_specificity"], rec["specificity_at_sensitivity"], rec["calibration"]
            rows.append({"learner": n, "target": t, "sens_at_spec": se["value"], "spec_target": se["at"],
                         "sens_low": se["ci"][0], "sens_high": se["ci"][1], "spec_at_sens": sp["value"],
                         "sens_target": sp["at"], "spec_low": sp["ci"][0], "spec_high": sp["ci"][1],
                         "calibration_intercept": cal["intercept"], "calibration_slope": cal["slope"]})
    return rows


def clinical_evaluation(inputs, context):
    """Held-out split at the frozen operating point, read-offs, calibration, decision curve,
    subgroups and the stack with a modality withheld."""
    ev, ok = _status(inputs)
    if not ok:
        return {"status": ev["status"], "command": ev.get("command")}, {}
    data = ev["data"]
    tables = ev["tables"].get(data["internal"], {})
    internal = data["sets"][data["internal"]]
    readoffs = _readoffs(internal, data["learners"])
    curve = tables.get("decision_curve", pd.DataFrame())
    charts = [c for t in sorted(set(curve.target)) if len(curve) for c in [_decision_chart(curve, t, "held-out")] if c]
    out = {"status": "ok", "op": data["operating_points"], "settings": data["settings"],
           "operating": _records(tables.get("operating_points")), "readoffs": readoffs, "decision": charts,
           "subgroups": _records(tables.get("subgroups")), "missing": _records(ev.get("missing_modality")),
           "missing_note": internal.get("missing_modality", {}).get("note"), "focus": data["focus"]}
    exports = {"clinical_operating_point": tables.get("operating_points", pd.DataFrame()),
               "clinical_readoffs": pd.DataFrame(readoffs), "clinical_decision_curve": curve,
               "clinical_subgroups": tables.get("subgroups", pd.DataFrame()),
               "clinical_missing_modality": ev.get("missing_modality", pd.DataFrame())}
    return out, exports


def _cohort(name, rec, tables, data, internal_set):
    classes, positive = data["classes"], data["positive"]
    if "learners" not in rec:
        return {"name": name, "n": rec.get("n"), "note": rec.get("note"), "excluded": rec.get("excluded", [])}
    preds = tables.get("predictions", pd.DataFrame())
    rows = []
    for n in data["learners"]:
        m, ci = rec["learners"][n]["metrics"], rec["learners"][n]["ci"]
        mi, cii = internal_set["learners"][n]["metrics"], internal_set["learners"][n]["ci"]
        change = rec.get("auc_change", {}).get(n, {})
        rows.append({"cohort": name, "learner": n, "internal_auc": mi["roc_auc"], "internal_low": cii["roc_auc"][0],
                     "internal_high": cii["roc_auc"][1], "external_auc": m["roc_auc"], "external_low": ci["roc_auc"][0],
                     "external_high": ci["roc_auc"][1], "auc_change": change.get("value"),
                     "change_low": (change.get("ci") or [None, None])[0],
                     "change_high": (change.get("ci") or [None, None])[1],
                     "balanced_accuracy": m["balanced_accuracy"], "brier": m["brier"]})
    target = stats.curve_targets(classes, positive)[0]
    j = classes.index(target)
    roc, cal, scores = [], [], {}
    y = None
    for n in data["focus"]:
        part = preds[preds.learner == n]
        y = part.y_true.astype(str).to_numpy()
        score = part[f"proba:{target}"].to_numpy(float)
        scores[n] = score
        c = stats.roc_pr_curves(y, part[[f"proba:{k}" for k in classes]].to_numpy(float)[:, j], target)
        if c:
            roc.append({"name": f"{n} ({c['auc']:.3f})", "x": c["fpr"], "y": c["tpr"]})
        k = stats.calibration(y, score, target)
        cal.append({"name": n, "x": k["predicted"], "y": k["observed"], "markers": True})
    charts = []
    if roc:
        charts.append(plots.line_chart(roc, f"ROC, {target} vs rest, cohort {name}", "false positive rate",
                                       "true positive rate", diagonal=True))
    if cal:
        charts.append(plots.line_chart(cal, f"Calibration, {target}, cohort {name}", "mean predicted probability",
                                       "observed fraction", diagonal=True))
    curve = tables.get("decision_curve", pd.DataFrame())
    if len(curve):
        chart = _decision_chart(curve, target, f"cohort {name}")
        charts += [chart] if chart else []
    all_scores = {n: preds[preds.learner == n][f"proba:{target}"].to_numpy(float) for n in data["learners"]}
    delong = stats.delong_vs_best(y, all_scores, target) if y is not None else None
    return {"name": name, "note": None, "n": rec["n"], "n_patients": rec["n_patients"], "class_counts": rec["class_counts"],
            "excluded": rec.get("excluded", []), "rows": rows, "charts": charts, "delong": delong,
            "readoffs": _readoffs(rec, data["learners"]), "operating": _records(tables.get("operating_points")),
            "subgroups": _records(tables.get("subgroups")), "image_notes": rec.get("image_notes", [])}


def external_data(ev, only=None):
    """The external-validation section's data from the evaluate stage's results alone (``only``: one
    cohort, for its standalone page)."""
    data = ev["data"]
    internal = data["sets"][data["internal"]]
    cohorts = [_cohort(name, rec, ev["tables"].get(name, {}), data, internal)
               for name, rec in data["sets"].items() if name != data["internal"] and only in (None, name)]
    rows = [r for c in cohorts for r in c.get("rows", [])]
    return {"status": "ok", "cohorts": cohorts}, {"external_validation": pd.DataFrame(rows)}


def external_validation(inputs, context):
    """Each external cohort beside the held-out split: AUC, its change with an interval, calibration,
    the frozen operating point, DeLong between learners on the cohort."""
    ev, ok = _status(inputs)
    if not ok:
        return {"status": ev["status"], "command": ev.get("command"), "cohorts": []}, {}
    return external_data(ev)


def cohort_page(ev, name, title, generated):
    """A page of one cohort's external validation (``evaluate --run ... --name``), for render_report."""
    data, _ = external_data(ev, only=name)
    return {"title": title, "generated": generated, "banner": None,
            "sections": [{"id": "external", "title": f"External validation: cohort {name}", "data": data}]}


def _facts(inputs):
    """What the run itself knows, for the guideline items (nothing invented)."""
    meta, metrics = inputs.design_meta, inputs.metrics
    s = meta["summary"]
    fit = metrics.get("config", {})
    facts = {
        "sources": [{"name": inputs.provenance["config"].get("study"), "manifest": inputs.provenance["config"].get("manifest"),
                     "n_rows": s.get("n_cases", 0) + len(meta.get("excluded", []))}],
        "eligibility": {"excluded": [{"reason": r, "n": n} for r, n in
                                     pd.Series([e["reason"] for e in meta.get("excluded", [])]).value_counts().items()],
                        "n_included": s.get("n_cases")},
        "counts": {"classes": meta["classes"], "per_split": {
            "train": {c: s["class_counts"].get(c, 0) - s.get("test_class_counts", {}).get(c, 0) for c in meta["classes"]},
            "held-out": dict(s.get("test_class_counts", {}))}},
        "missing": {"modalities": dict(s.get("missing_modality", {})), "clinical": dict(s.get("missing_clinical", {})),
                    "handling": "missing modalities: NaN plus an indicator, imputed inside each training fold; "
                                "missing clinical values imputed inside each training fold"},
        "model": {"learners": [n for n, r in metrics["learners"].items() if r.get("ablation") is None],
                  "stack": fit.get("stack"), "meta": fit.get("meta"), "pca": fit.get("pca_components"),
                  "balancing": fit.get("balancing"), "backbones": sorted({b.get("backbone", k) for k, b in
                                                                          meta.get("blocks", {}).items()}),
                  "weights": {k: b.get("weights") for k, b in meta.get("blocks", {}).items()}},
        "tuning": fit.get("tune", {}),
        "validation": {"cv": f"{len(s.get('fold_sizes', []))}-fold patient-wise cross-validation on the training split",
                       "holdout": f"patient-wise held-out split of {s.get('n_test')} cases, used once"},
        "software": inputs.provenance.get("versions", {}), "seed": inputs.provenance.get("seed"),
        "code": (inputs.provenance.get("commands") or [""])[0]}
    names = [n for n, r in metrics["learners"].items() if r.get("ablation") is None]
    if names:
        best = max(names, key=lambda n: metrics["learners"][n]["cv"]["roc_auc"]["mean"])
        rec = metrics["learners"][best]
        facts["internal"] = {"best": best, "auc": rec["holdout"]["roc_auc"], "ci": list(rec["holdout_ci"]["roc_auc"])}
    ev, ok = _status(inputs)
    if ok:
        data = ev["data"]
        internal = data["sets"][data["internal"]]
        lead = data["focus"][0]
        facts["calibration"] = {n: v for n in data["learners"] for t, v in
                                [(t, r.get("calibration")) for t, r in internal["learners"][n]["targets"].items()]
                                if v is not None}
        facts["operating_point"] = next(iter(data["operating_points"][lead].values()))
        facts["subgroups"] = list(data["settings"].get("subgroups", []))
        facts["external"] = [{"name": name, "auc": rec["learners"][lead]["metrics"]["roc_auc"],
                              "ci": rec["learners"][lead]["ci"]["roc_auc"], "n": rec["n"]}
                             for name, rec in data["sets"].items() if name != data["internal"] and "learners" in rec]
        for name, rec in data["sets"].items():
            if name != data["internal"] and "class_counts" in rec:
                facts["counts"]["per_split"][f"external:{name}"] = rec["class_counts"]
    return facts


def guideline_summary(inputs, context):
    """TRIPOD+AI and CLAIM items the run fills by itself, each pointing to its section."""
    from . import guideline  # noqa: PLC0415

    items = guideline.guideline_items(_facts(inputs))
    markdown = guideline.guideline_markdown(items, inputs.title)
    return {"rows": items, "markdown": markdown}, {"guideline": pd.DataFrame(items)}
