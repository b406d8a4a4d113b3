"""What the report is built from, already loaded: the stage fills a ReportInputs from the run, and the
library makes the whole page from it alone (it reads no file and fits nothing).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ReportSettings:
    hide_case_ids: bool = False     # "case 1..n" instead of case ids, on the page and in the exports
    shap: bool = True               # the attributions are the only part that calls a model
    tree_top_k: int = 12            # beeswarm rows besides the clinical variables


@dataclass
class ReportInputs:
    """Everything one page shows.

    design_meta: design.json (layout, classes, positive, summary, excluded, blocks, fingerprint).
    frame, y, is_test: the design matrix (index case_id), its labels and held-out mask.
    metrics, cv, holdout: fit's metrics.json, cv_predictions.csv and holdout_predictions.csv.
    pca_diagnostics: {block: {"ratio", "n_features", "n_train_rows", "components_for"}}.
    load_model: learner name -> (fitted model, its <learner>.json info), or None when not saved.
    occlusion: {"status": "ok" | "stale" | "missing", "command", "meta", "maps"} (maps as the explain
        stage wrote them; only shown when "ok").
    provenance: {"commands", "config", "versions", "fingerprints": {"design", "fit"}, "seed"}; the
        weights table comes from design_meta["blocks"].
    seed: the study's seed, for the SHAP background and row samples.
    evaluation: the evaluate stage's results (see reports.evaluation_sections), when fresh.
    """
    title: str
    design_meta: dict
    frame: pd.DataFrame
    y: np.ndarray
    is_test: np.ndarray
    metrics: dict
    cv: pd.DataFrame
    holdout: pd.DataFrame
    pca_diagnostics: dict
    pca_components: Any
    load_model: Callable[[str], tuple | None]
    occlusion: dict
    provenance: dict
    settings: ReportSettings
    seed: int
    evaluation: dict | None = None   # {"status", "command", "data", "tables", "missing_modality"} of evaluate

    @property
    def layout(self):
        return self.design_meta["layout"]

    @property
    def clinical(self):
        return self.frame[list(self.layout["clinical"])]


@dataclass(frozen=True)
class Context:
    """What several sections share, made once per page."""
    label: Callable[[Any], str]     # case id -> how the page names it (hidden ids or not)
    learners: list                  # the main learners (no ablations), in metrics order


def case_labeller(case_ids, hide):
    """str, or "case 1..n" in the order given (unknown ids: "case ?")."""
    if not hide:
        return str
    names = {}
    for case in case_ids:
        names.setdefault(str(case), f"case {len(names) + 1}")
    return lambda case: names.get(str(case), "case ?")


def stage_command(stage, study_path, overrides=()):
    """The command line of one stage on this run: the study file plus the `KEY=VALUE` settings the
    run used beyond it (command-line flags)."""
    study = shlex.quote(str(study_path)) if study_path else "<study.yaml>"
    return f"python run_pipeline.py {stage} -c {study}" + "".join(f" --set {shlex.quote(o)}" for o in overrides)
