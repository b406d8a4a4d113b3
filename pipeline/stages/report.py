"""The `report` stage: one self-contained HTML page comparing the classifiers, plus every table as CSV.

It loads what fit (and, when present and fresh, explain) committed, hands it to the ``reports``
library as one ``ReportInputs`` and writes what comes back. Nothing is refitted; SHAP only calls
the saved models. The reproduce commands come from the run record's flags, per stage.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import ClassVar

from pipeline import settings as s
from pipeline.contract import Artifact, Flag, Stage

log = logging.getLogger(__name__)
VERSION = 1


@dataclass(frozen=True)
class ReportSettings:
    MOVED: ClassVar[dict] = {"occlusion_grid": "explain.grid", "occlusion_cases": "explain.cases",
                             "occlusion_fill": "explain.fill"}

    hide_case_ids: bool = s.setting(False, s.boolean, "true or false", "show cases as 'case 1..n' instead of their ids")
    tree_top_k: int = s.setting(12, s.pos_int, "a positive integer",
                                "beeswarm: components shown beside the clinical variables")
    shap: bool = s.setting(True, s.boolean, "true or false",
                           "compute the SHAP section (the only part that calls a model; ~25 s on the demo)")


def _commands(study, record, stages):
    """Per stage of the run, the command that redoes it: the study file plus the flags its last
    commit ran with (this report's own for itself and for stages that never ran)."""
    from reports.inputs import stage_command  # noqa: PLC0415

    flags = {name: (record.flags(name, study.flags) if record else list(study.flags)) for name in stages}
    flags["report"] = list(study.flags)
    return {name: stage_command(name, study.path, flags[name]) for name in stages}


def _occlusion(inputs, status, commands):
    found = inputs.read("explain:occlusion") if status == "ok" and inputs.has("explain:occlusion") else None
    if status == "ok" and found is None:
        status = "missing"                  # explain ran, but the run saved no stack to explain
    meta, maps = found if found else (None, None)
    return {"status": status, "command": commands["explain"], "meta": meta, "maps": maps}


EVALUATE_TABLES = ("predictions", "metrics_table", "operating_points", "decision_curve", "subgroups", "excluded")


def _evaluation(inputs, status, commands):
    """The evaluate stage's results when they match the run, else how to make them."""
    out = {"status": status, "command": commands["evaluate"]}
    if status != "ok":
        return out
    data = inputs.read("evaluate:evaluation")
    tables = {name: {a: inputs.read(f"evaluate:{a}", cohort=name) for a in EVALUATE_TABLES
                     if inputs.has(f"evaluate:{a}", cohort=name)} for name in data["sets"]}
    return {**out, "data": data, "tables": tables, "missing_modality": inputs.read("evaluate:missing_modality")}


def load_inputs(inputs, study, run_record, explain_status, stages, evaluate_status="missing"):
    """Everything the page shows, read from the committed run (verified) and the study."""
    from reports import ReportInputs  # noqa: PLC0415
    from reports.inputs import ReportSettings as PageSettings  # noqa: PLC0415

    design = inputs.design()
    metrics = inputs.read("fit:metrics")
    commands = _commands(study, run_record, stages)

    def load_model(name):
        return inputs.model(name) if inputs.has_model(name) else None

    return ReportInputs(
        title=f"BreastFuse report: {study.name}", design_meta=design.meta, frame=design.frame, y=design.y,
        is_test=design.is_test, metrics=metrics, cv=inputs.read("fit:cv_predictions"),
        holdout=inputs.read("fit:holdout_predictions"), pca_diagnostics=inputs.read("fit:pca"),
        pca_components=metrics["config"]["pca_components"], load_model=load_model,
        occlusion=_occlusion(inputs, explain_status, commands),
        evaluation=_evaluation(inputs, evaluate_status, commands),
        provenance={"commands": list(commands.values()), "config": study.to_dict(), "versions": metrics["versions"],
                    "fingerprints": {"design": design.meta["fingerprint"], "fit": metrics["fingerprint"]},
                    "seed": study.seed},
        settings=PageSettings(hide_case_ids=study.report.hide_case_ids, shap=study.report.shap,
                              tree_top_k=study.report.tree_top_k),
        seed=study.seed)


def compute(ctx):
    from reports import build_page, render_report  # noqa: PLC0415

    page, tables = build_page(load_inputs(ctx.inputs, ctx.study, ctx.run_record, ctx.optional.get("explain"),
                                           ctx.run_order, ctx.optional.get("evaluate", "missing")))
    guideline = next(s["data"] for s in page["sections"] if s["id"] == "guideline")
    ctx.out.write_text("guideline", guideline["markdown"])
    for name, table in tables.items():
        ctx.out.write_csv("table", table, name=name)
    ctx.out.write_text("tables", json.dumps({n: t.to_dict(orient="records") for n, t in tables.items()},
                                            indent=1, default=str))
    ctx.out.write_text("page", render_report(page))
    log.info("report: written to %s", ctx.out.final_path("page"))
    return {"page": str(ctx.out.final_path("page")), "tables": sorted(tables)}


STAGE = Stage(
    name="report", version=VERSION, folder="reports", noun="report",
    summary="one self-contained HTML page comparing the classifiers",
    description="Write <run>/reports/report.html (opens offline in any browser) and a CSV of every table "
                "beside it: study summary and warnings, the classifier comparison, curves, significance tests, "
                "ablations, PCA diagnostics, grouped SHAP attributions of the stack with waterfalls, a "
                "TreeExplainer beeswarm, the occlusion maps of `explain` when they match the run, provenance. "
                "Nothing is refitted.",
    config=("report", "seed"),
    reads=("fuse:design", "fuse:design_meta", "fit:metrics", "fit:cv_predictions", "fit:holdout_predictions",
           "fit:model", "fit:model_info", "fit:pca", "explain:occlusion", "evaluate:evaluation",
           "evaluate:missing_modality", *(f"evaluate:{a}" for a in EVALUATE_TABLES)),
    optional=("explain", "evaluate"),
    writes=(Artifact("page", "report.html", "the page"), Artifact("table", "{name}.csv", "each table"),
            Artifact("guideline", "guideline.md", "the TRIPOD+AI / CLAIM items the run fills, as markdown"),
            Artifact("tables", "tables.json", "every table as JSON")),
    compute=compute, settings=ReportSettings, message=lambda o: f"report: {o.summary['page']}",
    flags=(Flag("--hide-case-ids", "report.hide_case_ids", "show cases as 'case 1..n' (also report.hide_case_ids)",
                action="store_true", value=True),
           Flag("--no-shap", "report.shap", "skip the SHAP section (faster)", action="store_true", value=False)),
)
