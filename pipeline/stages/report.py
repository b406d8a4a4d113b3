"""The `report` stage: one self-contained HTML page comparing the classifiers, plus every table as CSV.

Reads: <run>/fused/design.h5 + design.json, <run>/models/metrics.json, cv_predictions.csv,
       holdout_predictions.csv, the saved stack and tree learners (<run>/models/<learner>.joblib +
       .json) for SHAP, and the explain stage's <run>/reports/occlusion.npz when there is one.
Writes: <run>/reports/report.html, <run>/reports/<table>.csv, <run>/reports/tables.json.
Config: report.hide_case_ids when present (else the keyword argument); shows fit.pca_components and
        the whole config.
Nothing is refitted: the page shows what fit computed, and SHAP only calls the saved models.
This stage only loads (``load_inputs``) and writes; the page is made by ``reports.build_page``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import joblib
import pandas as pd

from pipeline import artifacts
from pipeline.config import load_study, override_flags, validate
from pipeline.design_store import read_design
from pipeline.errors import ConfigError, StageInputError
from pipeline.stages.explain import read_occlusion, settings as occlusion_settings
from reports import ReportInputs, ReportSettings, build_page, render_report
from reports.attribution import occlusion_inputs
from reports.inputs import stage_command

log = logging.getLogger(__name__)
STAGE_VERSION = 1
REPRODUCE = ("extract", "fuse", "fit", "explain", "report")


def _read_fit_outputs(run_dir):
    folder = artifacts.models_dir(run_dir)
    needed = [artifacts.metrics_json(run_dir), folder / "cv_predictions.csv", folder / "holdout_predictions.csv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise StageInputError(f"report: the fit stage's outputs are missing: {', '.join(missing)}")
    metrics = json.loads(needed[0].read_text())
    return metrics, pd.read_csv(needed[1], dtype={"case_id": str}), pd.read_csv(needed[2], dtype={"case_id": str})


def _model_loader(run_dir):
    """learner -> (its saved model, <learner>.json), or None when fit saved no such model."""
    def load(learner):
        path = artifacts.model_file(run_dir, learner)
        if not path.is_file():
            return None
        return joblib.load(path), json.loads(path.with_suffix(".json").read_text())
    return load


def load_inputs(study, hide_case_ids=False, shap=True):
    """Everything the page shows, read from the run folder and the study."""
    design = read_design(study.run_dir)
    metrics, cv, holdout = _read_fit_outputs(study.run_dir)
    overrides = _reproduce_flags(study)
    occlusion = occlusion_inputs(read_occlusion(study.run_dir), stage_command("explain", study.path, overrides),
                                 fit_fingerprint=metrics.get("fingerprint"),
                                 design_fingerprint=design.meta.get("fingerprint"),
                                 settings=occlusion_settings(study))
    provenance = {"commands": [stage_command(stage, study.path, overrides) for stage in REPRODUCE],
                  "config": study.config, "seed": metrics.get("seed"),
                  "versions": metrics.get("versions") or design.meta.get("versions", {}),
                  "fingerprints": {"design": design.meta.get("fingerprint"), "fit": metrics.get("fingerprint")}}
    return ReportInputs(
        title=f"BreastFuse report: {study.config.get('study', 'study')}", design_meta=design.meta,
        frame=design.frame, y=design.y, is_test=design.is_test, metrics=metrics, cv=cv, holdout=holdout,
        pca_diagnostics=design.meta.get("pca_diagnostics", {}), pca_components=study.fit.get("pca_components"),
        load_model=_model_loader(study.run_dir), occlusion=occlusion, provenance=provenance,
        settings=ReportSettings(hide_case_ids=hide_case_ids, shap=shap,
                                tree_top_k=study.config["report"]["tree_top_k"]),
        seed=study.seed)


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
    page, tables = build_page(load_inputs(study, hide_case_ids=hide_case_ids, shap=shap))
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
