"""The evaluate stage on a tiny two-modality study: external cohorts through the run's own extractors
and saved models (fitting nothing), thresholds frozen on training, unseen classes and unlabelled
cohorts, the missing-modality analysis, its cache and freshness, and the `evaluate --run` command."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.clinical import choose_threshold, parse_operating_point
from models.validation import oof_probabilities
from pipeline.cli import main
from pipeline.config import load_study, parse_override
from study_factory import catalog, make_study, run, write_image

FIT = {"learners": ["lr", "rf"], "stack_base": ["lr", "rf"], "n_boot": 100, "n_jobs": 1, "pca_components": 3,
       "params": {"rf": {"n_estimators": 30}}, "ablations": ["modality"]}
MODALITIES = ("mammography", "ultrasound")


def _study(path, *overrides):
    return load_study(path, [parse_override(o) for o in overrides])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A fitted run (site a) and a second, disjoint cohort (site b) with a class the run never saw."""
    root = tmp_path_factory.mktemp("evaluate")
    make_study(root / "b", n=16, modalities=MODALITIES)
    frame = pd.read_csv(root / "b" / "manifest.csv", dtype=str, keep_default_na=False)
    frame["case_id"] = "b" + frame["case_id"]
    frame["patient_id"] = "b" + frame["patient_id"]
    frame.loc[[0, 1], "label"] = "atypia"                 # unseen in training: listed and left out
    for i, row in frame.iterrows():                       # images of its own, not site a's
        for m in MODALITIES:
            write_image(root / "b" / row[f"{m}_path"], seed=5000 + 7 * i + len(m))
    frame.to_csv(root / "b" / "manifest.csv", index=False)
    path = make_study(root / "a", n=40, modalities=MODALITIES,
                      extra={"fuse": {"n_folds": 2, "test_size": 0.3}, "fit": FIT,
                             "evaluate": {"n_boot": 100, "subgroups": ["age", "history"], "subgroup_min_n": 4,
                                          "cohorts": [{"name": "site_b", "manifest": "../b/manifest.csv"}]}})
    study = _study(path)
    run(study, "extract", "fuse", "fit")
    return root, path, study


def _evaluate(study, **kwargs):
    return run(study, "evaluate", **kwargs)["evaluate"]


def test_a_cohort_is_scored_with_thresholds_frozen_on_training(fitted):
    root, _, study = fitted
    outcome = _evaluate(study)
    ev = catalog(study).read("evaluate:evaluation")
    cv = catalog(study).read("fit:cv_predictions")
    for learner, points in ev["operating_points"].items():
        y, proba = oof_probabilities(cv, learner, ev["classes"])
        expected = choose_threshold(y == "malignant", proba[:, 1], parse_operating_point("youden"))
        assert points["malignant"]["threshold"] == pytest.approx(expected["threshold"])
    site = ev["sets"]["site_b"]
    assert site["n"] == 14 and site["n_patients"] == 7                # 16 cases, 2 of an unseen class
    assert {e["case_id"] for e in site["excluded"]} == {"bc000", "bc001"}
    assert "not seen in training" in site["excluded"][0]["reason"]
    op = site["learners"]["stack"]["targets"]["malignant"]["operating_point"]
    assert op["threshold"] == ev["operating_points"]["stack"]["malignant"]["threshold"]
    assert sum(op["confusion"].values()) == 14
    assert set(site["auc_change"]) == set(ev["learners"])
    assert (outcome.folder / "site_b" / "page.html").is_file()
    cohort = json.loads((study.run_dir / "cohorts" / "site_b" / "features" / "stage.json").read_text())
    assert sum(cohort["summary"]["computed"].values()) == 2 * 16      # its images, embedded in its own run
    predictions = catalog(study).read("evaluate:predictions", cohort="site_b")
    assert set(predictions.learner) == {"lr", "rf", "stack"} and len(predictions) == 3 * 14


def test_changing_the_test_cohort_never_changes_the_threshold(fitted, tmp_path):
    root, path, study = fitted
    _evaluate(study)
    before = catalog(study).read("evaluate:evaluation")["operating_points"]
    frame = pd.read_csv(root / "b" / "manifest.csv", dtype=str, keep_default_na=False).iloc[2:10]
    frame.to_csv(tmp_path / "other.csv", index=False)
    for c in ("images",):
        shutil.copytree(root / "b" / c, tmp_path / c)
    other = _study(path, f"evaluate.cohorts=[{{name: other, manifest: {tmp_path / 'other.csv'}}}]")
    _evaluate(other)
    after = catalog(other).read("evaluate:evaluation")
    assert after["operating_points"] == before
    assert list(after["sets"]) == ["internal", "other"]
    _evaluate(study)                                             # leave the module's run as it was


def test_a_second_evaluate_computes_nothing_and_an_edited_cohort_is_redone(fitted):
    root, _, study = fitted
    _evaluate(study)
    again = _evaluate(study)
    assert not again.ran
    manifest = root / "b" / "manifest.csv"
    text = manifest.read_text()
    record = study.run_dir / "cohorts" / "site_b" / "features" / "stage.json"
    embedded = record.read_bytes()
    try:
        manifest.write_text(text.replace("atypia", "benign", 1))
        redone = _evaluate(study)
        assert redone.ran
        assert len(catalog(study).read("evaluate:evaluation")["sets"]["site_b"]["excluded"]) == 1
        assert record.read_bytes() == embedded                           # a label edit embeds nothing again
    finally:
        manifest.write_text(text)
        _evaluate(study)


def test_an_unlabelled_cohort_gets_predictions_and_a_note(fitted, tmp_path):
    root, path, _ = fitted
    frame = pd.read_csv(root / "b" / "manifest.csv", dtype=str, keep_default_na=False).drop(columns=["label"])
    frame.to_csv(root / "b" / "unlabelled.csv", index=False)
    study = _study(path, "output=" + str(tmp_path / "run"),
                   f"evaluate.cohorts=[{{name: new, manifest: {root / 'b' / 'unlabelled.csv'}}}]")
    shutil.copytree(fitted[2].run_dir, tmp_path / "run")
    _evaluate(study)
    ev = catalog(study).read("evaluate:evaluation")
    assert "nothing could be scored" in ev["sets"]["new"]["note"]
    assert len(catalog(study).read("evaluate:predictions", cohort="new")) == 3 * 16


def test_withheld_ultrasound_equals_a_manifest_with_empty_ultrasound_paths(fitted, tmp_path):
    root, path, study = fitted
    _evaluate(study)
    design = catalog(study).design()
    held_out = list(design.frame.index[design.is_test])
    frame = pd.read_csv(root / "a" / "manifest.csv", dtype=str, keep_default_na=False)
    frame = frame[frame.case_id.isin(held_out)].copy()
    frame["ultrasound_path"] = ""
    frame.to_csv(root / "a" / "no_us.csv", index=False)
    out = tmp_path / "pred.csv"
    assert main(["--no-progress", "predict", "--run", str(study.run_dir), "--manifest", str(root / "a" / "no_us.csv"),
                 "--out", str(out)]) == 0
    empty_paths = pd.read_csv(out, dtype={"case_id": str}).set_index("case_id")["proba:malignant"]

    from models.validation import withheld

    model, info = catalog(study).model("stack")
    rows = withheld(design.frame.loc[held_out], design.meta["layout"], "ultrasound")[info["columns"]]
    scored = model.predict_proba(rows)[:, info["classes"].index("malignant")]
    assert np.allclose(scored, empty_paths.loc[held_out].to_numpy(), atol=1e-12)
    table = catalog(study).read("evaluate:missing_modality")
    row = table[table.withheld == "ultrasound"].iloc[0]
    from models.clinical import auc

    y = design.y[design.is_test] == "malignant"
    assert row.auc == pytest.approx(auc(y, scored))


def test_evaluate_run_adds_a_cohort_from_the_run_folder_alone(fitted, tmp_path, capsys):
    root, _, study = fitted
    copy = tmp_path / "copy"
    shutil.copytree(study.run_dir, copy)
    code = main(["--no-progress", "evaluate", "--run", str(copy), "--manifest", str(root / "b" / "manifest.csv"),
                 "--name", "again"])
    assert code == 0, capsys.readouterr().err
    assert "page of cohort 'again'" in capsys.readouterr().out
    ev = json.loads((copy / "evaluate" / "evaluation.json").read_text())
    assert list(ev["sets"]) == ["internal", "site_b", "again"]
    assert "External validation" in (copy / "evaluate" / "again" / "page.html").read_text()


@pytest.mark.parametrize("args, message", [
    (["--set", "evaluate.cohorts=[{name: internal, manifest: x.csv}]"], "not 'internal'"),
    (["--set", "evaluate.operating_point={sensitivity: 95}"], "evaluate.operating_point"),
    (["--set", "evaluate.subgroups=[nosuch]"], "nosuch"),
])
def test_bad_evaluate_settings_exit_2_naming_the_key(fitted, args, message, capsys):
    _, path, _ = fitted
    assert main(["--no-progress", "evaluate", "-c", str(path), *args]) == 2
    assert message in capsys.readouterr().err


def test_evaluate_run_without_manifest_or_name_exits_2(fitted, capsys):
    _, _, study = fitted
    assert main(["evaluate", "--run", str(study.run_dir)]) == 2
    assert "--manifest CSV and --name NAME" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(study.run_dir), "--manifest", "nope.csv", "--name", "x"]) == 2
    assert "not found" in capsys.readouterr().err


def test_report_shows_the_clinical_and_external_sections(fitted):
    _, _, study = fitted
    _evaluate(study)
    run(study, "report", force=True)
    html = (study.run_dir / "reports" / "report.html").read_text()
    for anchor in ('id="clinical"', 'id="external"', 'id="guideline"', 'id="external-site_b"', 'id="clinical-op"',
                   'id="clinical-missing"'):
        assert anchor in html
    assert "Decision curve" in html
    assert (study.run_dir / "reports" / "guideline.md").read_text().count("|") > 20
