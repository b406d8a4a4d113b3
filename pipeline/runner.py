"""Every stage of a study in order (`run_pipeline.py run`, the demo, the reference results).

Each stage keeps its own cache, so a second run redoes only what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class StudyRun:
    """What one pass over the stages produced, for the caller's summary."""

    extract: object
    design: object
    metrics: dict
    occlusion: Path | None
    report: Path | None


def run_all_stages(study, manifest, force=False, show_progress=True, explain=True, report=True,
                   shap=True, cache_dirs=()):
    """extract → fuse → fit → explain → report; ``explain=False`` skips the occlusion maps (the only
    stage after extract that re-embeds images), ``report=False`` stops after fit."""
    from pipeline.stages.explain import run_explain  # noqa: PLC0415  (stages import their own heavy parts)
    from pipeline.stages.extract import run_extract  # noqa: PLC0415
    from pipeline.stages.fit import run_fit  # noqa: PLC0415
    from pipeline.stages.fuse import run_fuse  # noqa: PLC0415
    from pipeline.stages.report import run_report  # noqa: PLC0415

    extracted = run_extract(study, manifest, force=force, show_progress=show_progress, cache_dirs=cache_dirs)
    design = run_fuse(study, manifest, force=force)
    metrics = run_fit(study, design, force=force, show_progress=show_progress)
    occlusion = run_explain(study, manifest, force=force, show_progress=show_progress) if explain else None
    page = run_report(study, shap=shap) if report else None
    return StudyRun(extracted, design, metrics, occlusion, page)
