"""The `evaluate` stage: the clinical evaluation of a fitted run, on its held-out split and on every
external cohort of ``evaluate.cohorts``, fitting nothing.

Operating points are frozen on the training split's out-of-fold predictions and applied unchanged to
the held-out split and each cohort. A cohort's images go through the run's recorded extractors (its
own run folder under ``<run>/cohorts/<name>``, the run's embeddings as a cache), then through every
saved model. The statistics are ``models.validation``'s; this module reads, scores and writes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline import settings as s
from pipeline.contract import Artifact, Flag, Stage

log = logging.getLogger(__name__)
VERSION = 1
INTERNAL = "internal"          # the held-out split, as a scored set beside the cohorts
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _operating_point(v):
    from models.clinical import parse_operating_point  # noqa: PLC0415

    try:
        parse_operating_point(v)
    except ValueError:
        return False
    return True


def _cohorts(v):
    return isinstance(v, list) and all(isinstance(c, dict) and set(c) <= {"name", "manifest"}
                                       and s.text(c.get("name")) and s.text(c.get("manifest")) for c in v)


def _bands(v):
    return isinstance(v, dict) and all(isinstance(e, list) and e and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in e) for e in v.values())


@dataclass(frozen=True)
class EvaluateSettings:
    cohorts: list = s.setting([], _cohorts, "a list of {name: ..., manifest: ...}",
                              "external cohorts scored with the saved models (manifests relative to the study file)")
    operating_point: object = s.setting("youden", _operating_point,
                                        "youden, {sensitivity: 0.95}, {specificity: 0.90} or {threshold: 0.3}",
                                        "the threshold rule, chosen on the training split's out-of-fold predictions")
    fixed_specificity: float = s.setting(0.90, s.fraction, "a fraction in (0, 1)",
                                         "sensitivity is also read off the ROC curve at this specificity")
    fixed_sensitivity: float = s.setting(0.90, s.fraction, "a fraction in (0, 1)",
                                         "specificity is also read off the ROC curve at this sensitivity")
    subgroups: list = s.setting([], s.text_list, "a list of column names",
                                "subgroup results per clinical or manifest column (numeric: quartile bands)")
    subgroup_bands: dict = s.setting({}, _bands, "a mapping of column to a list of band edges",
                                     "declared bands of numeric subgroup columns, e.g. {age: [50, 65]}")
    subgroup_min_n: int = s.setting(20, s.pos_int, "a positive integer", "smaller subgroups are shown as too few")
    n_boot: int = s.setting(1000, lambda v: s.is_int(v) and v >= 100, "an integer >= 100",
                            "bootstrap resamples (patients resampled, not images)")

    def problems(self, where):
        out, seen = [], set()
        for i, c in enumerate(self.cohorts):
            name = str(c["name"])
            if not _NAME.match(name) or name == INTERNAL:
                out.append(f"{where}cohorts[{i}].name: {name!r} must be letters, digits, '_', '-' or '.' "
                           f"(and not '{INTERNAL}', the held-out split's name)")
            if name in seen:
                out.append(f"{where}cohorts[{i}].name: {name!r} is listed twice")
            seen.add(name)
        return out

    def resolved(self, base_dir):
        """Cohort manifests as absolute paths (relative ones are relative to the study file)."""
        cohorts = [{"name": str(c["name"]), "manifest": str((Path(base_dir) / c["manifest"]).resolve())}
                   for c in self.cohorts]
        return replace(self, cohorts=cohorts)

    def validation_settings(self, seed):
        from models.validation import EvaluationSettings  # noqa: PLC0415

        return EvaluationSettings(n_boot=self.n_boot, seed=seed, fixed_specificity=self.fixed_specificity,
                                  fixed_sensitivity=self.fixed_sensitivity, subgroup_min_n=self.subgroup_min_n)


def cohort_folder(run_dir, name):
    """Where a cohort's own extract run lives (its embeddings, lock and records)."""
    return Path(run_dir) / "cohorts" / name


def external(session):
    """Each cohort manifest's content and its images' (hashed through the run's hash cache)."""
    from pipeline.cohort import cohort_fingerprint  # noqa: PLC0415

    return {c["name"]: cohort_fingerprint(session, c["manifest"]) for c in session.study.evaluate.cohorts}


def explain_external(old, new, session):
    lines = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            lines.append(f"cohort '{name}' is new")
        elif name not in new:
            lines.append(f"cohort '{name}' is no longer listed")
        elif old[name] != new[name]:
            lines.append(f"cohort '{name}': its manifest or images changed")
    return lines or ["its cohorts changed"]


def compute(ctx):
    from pipeline.evaluation import evaluate_run  # noqa: PLC0415  (heavy: models, bootstrap)

    return evaluate_run(ctx, INTERNAL, cohort_folder)


def _message(outcome):
    lines = []
    for name, rec in outcome.summary.get("sets", {}).items():
        auc = rec.get("auc")
        shown = f"AUC {auc:.3f}" if isinstance(auc, float) else rec.get("note", "not scored")
        lines.append(f"  {name}: {rec.get('n', 0)} cases, {rec.get('learner', '')} {shown}")
    return "evaluate:\n" + "\n".join(lines) + f"\nevaluate: results in {outcome.folder}"


STAGE = Stage(
    name="evaluate", version=VERSION, folder="evaluate", noun="clinical evaluation",
    summary="operating points, decision curves, subgroups, missing modalities and external cohorts",
    description="Score the saved models, fitting nothing: on the held-out split and on each external cohort of "
                "evaluate.cohorts (its images embedded with the run's own extractors, cached under "
                "<run>/cohorts/<name>). Per set: every metric with a patient-level bootstrap interval, the "
                "operating point chosen on the training split's out-of-fold predictions (sensitivity, "
                "specificity, PPV, NPV), sensitivity and specificity read off the ROC curve, calibration "
                "intercept and slope, the decision curve, subgroups; on the held-out split also the stack with "
                "each modality withheld. Writes <run>/evaluate/, which report shows.",
    config=("evaluate", "modalities", "clinical", "extract", "label", "patient_column", "seed"),
    reads=("fuse:design", "fuse:design_meta", "fit:model", "fit:model_info", "fit:metrics",
           "fit:cv_predictions", "fit:holdout_predictions"),
    writes=(Artifact("evaluation", "evaluation.json", "every scored set's results, the operating points"),
            Artifact("predictions", "{cohort}/predictions.csv", "each learner's probabilities per case"),
            Artifact("metrics_table", "{cohort}/metrics.csv", "metrics with intervals per learner"),
            Artifact("operating_points", "{cohort}/operating_point.csv", "results at the frozen thresholds"),
            Artifact("decision_curve", "{cohort}/decision_curve.csv", "net benefit by threshold"),
            Artifact("subgroups", "{cohort}/subgroups.csv", "subgroup results at the frozen threshold"),
            Artifact("missing_modality", "missing_modality.csv", "the stack with each modality withheld"),
            Artifact("excluded", "{cohort}/excluded.csv", "cohort cases left out, with the reason"),
            Artifact("page", "{cohort}/page.html", "a standalone page of one cohort's external validation")),
    compute=compute, external=external, explain_external=explain_external, settings=EvaluateSettings,
    needs_manifest=True, message=_message,
    flags=(Flag("--operating-point", "evaluate.operating_point",
                "youden | sensitivity=0.95 | specificity=0.90 | threshold=0.3 (chosen on training predictions)",
                type=lambda t: t if t == "youden" else {t.partition("=")[0]: float(t.partition("=")[2])}
                if "=" in t else float(t)),),
)
