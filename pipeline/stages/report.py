"""The `report` stage: one self-contained HTML page comparing the classifiers, plus every table as CSV.

Reads: <run>/fused/design.h5 + design.json, <run>/models/metrics.json, cv_predictions.csv,
       holdout_predictions.csv, and the saved stack (<run>/models/stack.joblib + .json) for SHAP.
Writes: <run>/reports/report.html, <run>/reports/<table>.csv, <run>/reports/tables.json.
Config: report.hide_case_ids when present (else the keyword argument); shows fit.pca_components and
        the whole config.
Nothing is refitted: the page shows what fit computed, and SHAP only calls the saved stack.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import joblib
from threadpoolctl import threadpool_limits
import numpy as np
import pandas as pd

from pipeline import artifacts
from pipeline.config import load_study, override_flags, validate
from pipeline.design_store import read_design
from pipeline.errors import ConfigError, StageInputError
from pipeline.stages.explain import read_occlusion, settings as occlusion_settings
from reports import sections
from reports.cases import MAX_MISTAKES, SHAP_CASES, complete_cases, explained_cases
from reports.html import render_report
from reports.shapley import grouped_shapley
from reports.trees import TREE_LEARNERS, tree_shap

log = logging.getLogger(__name__)
STAGE_VERSION = 1
SHAP_BACKGROUND = 20
TREE_ROWS = 300     # held-out rows through TreeExplainer, at most


def _read_fit_outputs(run_dir):
    folder = artifacts.models_dir(run_dir)
    needed = [artifacts.metrics_json(run_dir), folder / "cv_predictions.csv", folder / "holdout_predictions.csv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise StageInputError(f"report: the fit stage's outputs are missing: {', '.join(missing)}")
    metrics = json.loads(needed[0].read_text())
    return metrics, pd.read_csv(needed[1], dtype={"case_id": str}), pd.read_csv(needed[2], dtype={"case_id": str})


def _case_labeller(design, hide):
    if not hide:
        return str
    ids = list(design.frame.index) + [e["case_id"] for e in design.meta.get("excluded", [])]
    names = {}
    for case in ids:
        names.setdefault(str(case), f"case {len(names) + 1}")
    return lambda case: names.get(str(case), "case ?")


def _player_groups(layout, columns):
    """Column indices per player: each embedding block and each clinical variable. Missingness
    indicators are no player: SHAP only mixes rows with every modality present (the fusion refuses
    a block whose NaNs disagree with its indicator), so they are constant."""
    index = {c: i for i, c in enumerate(columns)}
    groups = {block: [index[c] for c in cols] for block, cols in layout["blocks"].items()}
    for column in layout["clinical"]:
        groups[f"clinical: {column}"] = [index[column]]
    return list(groups), list(groups.values())


def _stack_shap(run_dir, design, holdout, seed):
    """Grouped Shapley values of the saved stack on a few held-out cases (None without a stack)."""
    folder = artifacts.models_dir(run_dir)
    if not (folder / "stack.joblib").is_file():
        return None
    model = joblib.load(folder / "stack.joblib")
    info = json.loads((folder / "stack.json").read_text())
    columns, classes = info["columns"], info["classes"]
    positive = info["positive"] if info["positive"] is not None else classes[-1]
    categorical = [c for c, k in info["layout"]["clinical"].items() if k == "categorical"]
    frame = design.frame[columns]
    codes = {c: pd.Index(sorted(frame[c].dropna().astype(str).unique())) for c in categorical}
    encoded = frame.copy()
    for c in categorical:   # categories travel as float codes through the Shapley arrays
        encoded[c] = codes[c].get_indexer(frame[c].astype(str)).astype(float)
        encoded.loc[frame[c].isna(), c] = np.nan
    encoded = encoded.astype(float)

    def predict(rows):
        out = pd.DataFrame(rows, columns=columns)
        for c in categorical:
            values = out[c].to_numpy()
            out[c] = pd.Series([codes[c][int(v)] if np.isfinite(v) else np.nan for v in values], dtype=object)
        return model.predict_proba(out)

    complete = complete_cases(frame, info["layout"].get("indicators", []))
    rng = np.random.default_rng(seed)
    train = np.flatnonzero(~design.is_test & frame.index.isin(complete))
    if len(train) == 0:
        return None
    background = encoded.iloc[np.sort(rng.choice(train, min(SHAP_BACKGROUND, len(train)), replace=False))]
    chosen = explained_cases(holdout, classes, positive, complete, SHAP_CASES, MAX_MISTAKES)
    if chosen.empty:
        return None
    cases = chosen.index
    names, groups = _player_groups(info["layout"], columns)
    phi, base, fx, method = grouped_shapley(predict, encoded.loc[cases].to_numpy(), background.to_numpy(),
                                            groups, random_state=seed)
    outputs = [positive] if len(classes) == 2 else list(classes)
    keep = [classes.index(o) for o in outputs]
    return {"groups": names, "outputs": outputs, "phi": phi[:, :, keep], "base": base[keep], "fx": fx[:, keep],
            "cases": list(cases), "y_true": chosen.y_true.tolist(), "predicted": chosen.predicted.tolist(),
            "mistake": chosen.mistake.tolist(), "explained_output": chosen.output.tolist(),
            "method": method, "n_background": len(background)}


def _tree_shap(run_dir, design, seed, positive):
    """TreeExplainer SHAP of the first saved tree learner (xgb, rf, et) on held-out rows; (None, None)
    when the run saved none of them."""
    folder = artifacts.models_dir(run_dir)
    learner = next((n for n in TREE_LEARNERS if artifacts.model_file(run_dir, n).is_file()), None)
    if learner is None:
        return None, None
    model = joblib.load(artifacts.model_file(run_dir, learner))
    info = json.loads((folder / f"{learner}.json").read_text())
    X = design.frame.loc[design.is_test, info["columns"]]
    if len(X) > TREE_ROWS:
        X = X.iloc[np.sort(np.random.default_rng(seed).choice(len(X), TREE_ROWS, replace=False))]
    classes = list(model.classes_)
    result = tree_shap(model, X, classes, only=positive if len(classes) == 2 else None)
    if result["additivity"] > 1e-4:
        log.warning("report: %s TreeExplainer values miss the model output by %.2g", learner, result["additivity"])
    return learner, result


def _occlusion(study, design, metrics, label, overrides):
    """The explain stage's maps when they match this run, else what to run to get them."""
    command = sections.stage_command("explain", study.path, overrides)
    found = read_occlusion(study.run_dir)
    if found is None:
        return {"status": "missing", "command": command, "panels": []}, None
    meta, maps = found
    if (meta.get("fit_fingerprint") != metrics.get("fingerprint")
            or meta.get("design_fingerprint") != design.meta.get("fingerprint")
            or meta.get("settings") != occlusion_settings(study)):
        return {"status": "stale", "command": command, "panels": []}, None
    panels, table = sections.occlusion_summary(maps, label)
    return {"status": "ok", "command": command, "panels": panels, "grid": meta["settings"]["grid"],
            "n_cases": len(meta["cases"]),
            "fill": meta["settings"]["fill"],
            "backbones": sorted({b for m in maps for b in m["backbones"]})}, table


def build_page(study, design, metrics, cv, holdout, hide_case_ids=False, shap=True):
    """All sections as plain data, and every table as a frame keyed by export name."""
    label = _case_labeller(design, hide_case_ids)
    clinical = design.frame[list(design.layout["clinical"])]
    summary, tables = sections.study_summary(design.meta, clinical, design.y, label)
    comparison, tables["comparison"] = sections.comparison(metrics)
    curves, tables["confusion"] = sections.curves(metrics, holdout, cv)
    significance, more = sections.significance(metrics, holdout)
    tables.update(more)
    ablation, tables["ablation"] = sections.ablation(metrics)
    embeddings, tables["pca"] = sections.embeddings(design.meta, study.fit.get("pca_components"))
    started = time.perf_counter()
    with threadpool_limits(limits=1):   # threaded BLAS is far slower here on small batches (see fit)
        result = _stack_shap(study.run_dir, design, holdout, study.seed) if shap else None
    shap_data, more = sections.shap_summary(result, label)
    tables.update(more)
    trees = None
    if shap:
        classes = metrics["classes"]
        positive = metrics["positive"] if metrics["positive"] is not None else classes[-1]
        learner, tree_result = _tree_shap(study.run_dir, design, study.seed, positive)
        trees, more = sections.tree_summary(tree_result, learner, design.layout["clinical"],
                                            study.config["report"]["tree_top_k"])
        tables.update(more)
    log.info("report: SHAP in %.1f s", time.perf_counter() - started)
    overrides = _reproduce_flags(study)
    occlusion, table = _occlusion(study, design, metrics, label, overrides)
    if table is not None:
        tables["occlusion"] = table
    provenance, more = sections.provenance(design.meta, metrics, study.config, study.path, overrides)
    tables.update(more)
    page = {"title": f"BreastFuse report: {study.config.get('study', 'study')}",
            "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "summary": summary, "comparison": comparison, "curves": curves, "significance": significance,
            "ablation": ablation, "embeddings": embeddings, "shap": shap_data, "trees": trees,
            "trees_skipped": "turned off" if not shap else "no tree learner (xgb, rf, et) was saved in this run",
            "occlusion": occlusion, "provenance": provenance}
    return page, tables


def _reproduce_flags(study):
    """The `--set` flags that turn the study file into what this run used: fit's record of its config
    (command-line flags included), with this report's own section."""
    record = artifacts.study_record(study.run_dir)
    if study.path is None or not record.is_file() or not Path(study.path).is_file():
        return []
    base = Path(study.path).resolve().parent
    try:
        from_file = load_study(study.path).config
        used = validate(json.loads(record.read_text(encoding="utf-8")), base).config
    except ConfigError:     # the file changed shape since: show the plain commands and the config below
        return []
    used["report"] = study.config["report"]
    return override_flags(from_file, used, base)


def run_report(study, hide_case_ids=None, shap=True):
    """Render <run>/reports/report.html (and the tables as CSV beside it); return the page's path.

    hide_case_ids: show "case 1..n" instead of case ids (page and exports); None takes the study's
    ``report.hide_case_ids`` when the config has that section, else False.
    shap: compute the grouped SHAP section (the only part that calls a model; ~25 s on the demo).
    """
    if hide_case_ids is None:
        hide_case_ids = bool((study.config.get("report") or {}).get("hide_case_ids", False))
    design = read_design(study.run_dir)
    metrics, cv, holdout = _read_fit_outputs(study.run_dir)
    page, tables = build_page(study, design, metrics, cv, holdout, hide_case_ids=hide_case_ids, shap=shap)
    html = render_report(page)
    out = artifacts.reports_dir(study.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        artifacts.write_csv(out / f"{name}.csv", table)
    artifacts.write_atomic(out / "tables.json", json.dumps({n: t.to_dict(orient="records") for n, t in tables.items()},
                                                 indent=1, default=str))
    path = out / "report.html"
    artifacts.write_atomic(path, html)
    log.info("report: written to %s", path)
    return path
