"""A CV fold that fails is kept and said: metrics.json holds every fold's metrics and flags, the
fit command's table marks the learner and names the fold, the report warns beside it and shows
the per-fold table (also exported as cv_folds.csv)."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config import load_study
from pipeline.stages import STAGES
from study_factory import catalog, make_study, report_page, run

FIT = {"learners": ["lr", "rf"], "stack": False, "ablations": [], "n_boot": 100, "n_jobs": 1,
       "pca_components": 2, "params": {"rf": {"n_estimators": 30}}}


@pytest.fixture(scope="module")
def flagged(tmp_path_factory):
    """A study whose age predicts the label one way in every CV fold but fold 0, where it runs the
    other way: a model trained on the other folds ranks fold 0 backwards."""
    root = tmp_path_factory.mktemp("flagged")
    path = make_study(root, n=48, extra={"fuse": {"n_folds": 4, "test_size": 0.25}, "fit": FIT})
    run(load_study(path), "extract", "fuse")
    design = catalog(load_study(path)).design()
    in_fold0 = pd.Series(design.folds[0] == 0, index=design.frame.index)
    frame = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    sign = np.where(in_fold0.reindex(frame.case_id, fill_value=False).to_numpy(), -1, 1)
    malignant = np.where(frame.label == "malignant", 1, -1)
    frame["age"] = (50 + 10 * sign * malignant + np.arange(len(frame)) % 3).astype(str)
    frame.to_csv(root / "manifest.csv", index=False)
    study = load_study(path)
    outcomes = run(study, "extract", "fuse", "fit")
    assert (catalog(study).design().folds == design.folds).all()      # the folds did not move
    return study, outcomes["fit"], catalog(study).read("fit:metrics")


def test_metrics_json_keeps_every_fold_with_its_metrics_and_flags(flagged):
    _, _, metrics = flagged
    lr = metrics["learners"]["lr"]
    assert [(f["repeat"], f["fold"]) for f in lr["folds"]] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    for f in lr["folds"]:
        assert {"n_train", "n_val", "metrics", "auc_ci", "rank_correlation", "flags"} <= set(f)
        assert f["n_train"] + f["n_val"] == metrics["n_train"] and "roc_auc" in f["metrics"]
    assert lr["folds"][0]["flags"] == ["auc_below_chance"] and lr["folds"][0]["auc_ci"][1] < 0.5
    assert all(f["flags"] == [] for f in lr["folds"][1:])
    assert lr["cv"]["roc_auc"]["mean"] == pytest.approx(np.mean([f["metrics"]["roc_auc"] for f in lr["folds"]]))
    assert len(lr["warnings"]) == 1 and lr["warnings"][0].startswith("repeat 0, fold 0: AUC ")


def test_the_fit_command_marks_the_learner_and_names_the_fold(flagged):
    _, outcome, _ = flagged
    text = STAGES["fit"].message(outcome)
    lr_row = next(line for line in text.splitlines() if line.startswith("lr "))
    assert lr_row.rstrip().endswith("!")
    assert "  lr: repeat 0, fold 0: AUC" in text and "below chance" in text


def test_the_report_warns_beside_the_learner_and_shows_every_fold(flagged):
    study, _, metrics = flagged
    page = report_page(study, shap=False)
    html = page.read_text(encoding="utf-8")
    assert '<div class="warning fold-warning" data-learner="lr">' in html
    assert 'lr <a class="flag" href="#cv-folds"' in html
    assert 'id="cv-folds-table"' in html and '<tr class="flagged">' in html
    folds = pd.read_csv(page.parent / "cv_folds.csv", keep_default_na=False)
    lr = folds[folds.learner == "lr"]
    assert lr.fold.tolist() == [0, 1, 2, 3] and lr["flags"].tolist() == ["auc_below_chance", "", "", ""]
    assert lr.roc_auc.tolist() == pytest.approx([f["metrics"]["roc_auc"] for f in metrics["learners"]["lr"]["folds"]])
    assert set(folds.learner) == {"lr", "rf"}
    assert "cv_folds" in json.loads((page.parent / "tables.json").read_text())
