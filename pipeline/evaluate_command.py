"""`evaluate --run DIR --manifest CSV --name NAME`: one more external cohort for a fitted run, from the
run folder alone (its recorded study), through the same evaluate stage as a study file's cohorts."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import StageInputError


def evaluate_cohort(run_dir, manifest_path, name, overrides=(), **kwargs):
    """Add (or replace) the cohort ``name`` in the run's recorded cohorts and run evaluate; returns
    the stage outcome and the cohort's page."""
    from pipeline.predict import recorded_study  # noqa: PLC0415
    from pipeline.runner import run_stage  # noqa: PLC0415

    manifest_path = Path(manifest_path).resolve()
    if not manifest_path.is_file():
        raise StageInputError(f"evaluate: cohort manifest not found: {manifest_path}",
                              hint="Pass the CSV of the external cohort with --manifest.")
    study, _ = recorded_study(run_dir)
    cohorts = [c for c in study.evaluate.cohorts if c["name"] != name]
    cohorts.append({"name": name, "manifest": str(manifest_path)})
    study = study.with_overrides([(["evaluate", "cohorts"], cohorts), *overrides])
    outcome = run_stage("evaluate", study, **kwargs)
    return outcome, outcome.folder / name / "page.html"
