"""fuse -> fit -> predict on a tiny study: patient-wise splits, nothing dropped silently, saved
models and metrics, determinism, and predict reproducing the held-out probabilities."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import load_study, parse_override
from pipeline.errors import ManifestError
from pipeline.predict import run_predict
from pipeline.stages import STAGES
from study_factory import catalog, make_study, run

REPO = Path(__file__).resolve().parents[2]
FIT = {"learners": ["lr", "rf"], "stack_base": ["lr", "knn"], "n_boot": 100, "n_jobs": 1,
       "pca_components": 5, "params": {"rf": {"n_estimators": 30}}, "ablations": ["images_only", "clinical_only"]}


def _study(path, *overrides):
    return load_study(path, [parse_override(o) for o in overrides])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    path = make_study(root, n=32, modalities=("ultrasound",), backbones=("handcrafted",),
                      extra={"fuse": {"n_folds": 3, "test_size": 0.25}, "fit": FIT})
    frame = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    frame.loc[[30, 31], "label"] = "unsure"             # to be dropped, counted and listed
    frame.loc[3, "ultrasound_path"] = ""                 # a case lacking its image: imputed
    frame.to_csv(root / "manifest.csv", index=False)
    study = _study(path, "label.drop=[unsure]")
    run(study, "extract", "fuse", "fit")
    return root, path, study, catalog(study).design(), catalog(study).read("fit:metrics")


def test_fuse_lists_excluded_cases_and_keeps_a_case_missing_its_image(fitted):
    _, _, _, design, _ = fitted
    assert [e["case_id"] for e in design.meta["excluded"]] == ["c030", "c031"]
    assert "label.drop" in design.meta["excluded"][0]["reason"]
    assert len(design.frame) == 30
    assert design.frame.loc["c003", "missing:ultrasound"] == 1
    assert design.frame.loc["c003"].filter(like="ultrasound/handcrafted/").isna().all()
    assert design.meta["summary"]["missing_modality"] == {"ultrasound": 1}


@pytest.fixture(scope="module")
def odd_columns(tmp_path_factory):
    """A tiny extracted study whose manifest also holds an identifier, boxes and constant columns;
    site (categorical) and scanner (numeric) are constant and declared clinical."""
    root = tmp_path_factory.mktemp("columns")
    path = make_study(root, n=16, extra={"fuse": {"n_folds": 2, "test_size": 0.25},
                                         "clinical": {"site": "categorical", "scanner": "numeric"}})
    frame = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    frame["lesion_code"] = [f"L{i:04d}" for i in range(len(frame))]
    frame["bbox"] = [f"[{91 + i},24,103,79]" for i in range(len(frame))]
    frame["site"], frame["scanner"] = "A", "3"
    frame.to_csv(root / "manifest.csv", index=False)
    run(_study(path), "extract")
    return path


def test_fuse_drops_a_constant_clinical_column_with_a_note(odd_columns):
    study = _study(odd_columns)
    outcome = run(study, "fuse")["fuse"]
    design = catalog(study).design()
    assert design.meta["layout"]["clinical"] == {"age": "numeric", "history": "categorical"}
    assert "site" not in design.frame.columns and "scanner" not in design.frame.columns
    assert design.meta["excluded_columns"] == [
        {"column": "site", "reason": "constant: every row with a value holds 'A'"},
        {"column": "scanner", "reason": "constant: every row with a value holds '3.0'"}]
    assert "note: clinical column 'site' left out: constant" in STAGES["fuse"].message(outcome)


def test_fuse_refuses_identifier_like_and_box_categorical_columns_naming_them(odd_columns):
    out = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), "--no-progress", "fuse", "-c",
                          str(odd_columns), "--set", "clinical.lesion_code=categorical",
                          "--set", "clinical.bbox=categorical"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "clinical column 'lesion_code' (declared categorical): identifier-like: 16 distinct values in 16 rows" \
        in out.stderr
    assert "clinical column 'bbox' (declared categorical): a lesion box [x, y, w, h]" in out.stderr
    assert "Remove them from `clinical:`" in out.stderr


def test_splits_are_patient_wise(fitted):
    root, _, _, design, _ = fitted
    patients = pd.read_csv(root / "manifest.csv", dtype=str).set_index("case_id").loc[design.frame.index, "patient_id"]
    test_patients = set(patients[design.is_test])
    assert test_patients and not test_patients & set(patients[~design.is_test])
    fold_of = {}
    for case, fold in zip(design.frame.index, design.folds[0]):
        if fold >= 0:
            assert fold_of.setdefault(patients[case], fold) == fold
    assert set(design.folds[0][design.is_test]) == {-1}


def test_design_round_trips_through_its_files(fitted):
    _, _, study, design, _ = fitted
    again = catalog(study).design()
    pd.testing.assert_frame_equal(again.frame, design.frame, check_dtype=False)
    assert list(again.y) == list(design.y) and (again.folds == design.folds).all()


def test_fit_writes_every_learner_the_stack_and_ablations(fitted):
    _, _, study, _, metrics = fitted
    assert set(metrics["learners"]) == {"lr", "rf", "stack", "stack[images_only]", "stack[clinical_only]"}
    for name in ("lr", "rf", "stack"):
        assert (study.run_dir / "models" / f"{name}.skops").is_file()
        rec = metrics["learners"][name]
        assert 0 <= rec["holdout"]["roc_auc"] <= 1
        low, high = rec["holdout_ci"]["roc_auc"]
        assert low <= high
    table = pd.read_csv(study.run_dir / "models" / "metrics.csv")
    row = table[(table.learner == "stack") & (table.metric == "roc_auc")].iloc[0]
    assert row.holdout == pytest.approx(metrics["learners"]["stack"]["holdout"]["roc_auc"])
    saved = json.loads((study.run_dir / "models" / "metrics.json").read_text())
    assert saved["fingerprint"] == metrics["fingerprint"]
    cv = pd.read_csv(study.run_dir / "models" / "cv_predictions.csv")
    assert set(cv.case_id) <= set(fitted[3].frame.index[~fitted[3].is_test])


def test_same_seed_gives_identical_numbers(fitted):
    _, path, _, design, metrics = fitted
    study = _study(path, "label.drop=[unsure]", "fit.cache=false")      # every fit made again
    run(study, "fit", force=True)
    again = catalog(study).read("fit:metrics")
    assert again["fits"]["cached"] == 0 and again["fits"]["fitted"] == again["fits"]["distinct"]
    assert json.dumps(again["learners"]["stack"]["cv"], sort_keys=True) == \
        json.dumps(metrics["learners"]["stack"]["cv"], sort_keys=True)
    assert again["learners"]["rf"]["holdout"] == metrics["learners"]["rf"]["holdout"]


def test_a_rerun_reads_its_fits_from_the_cache_and_refits_only_the_saved_models(fitted):
    _, _, study, _, metrics = fitted
    assert any((study.run_dir / ".cache" / "fit").rglob("*.npz"))
    run(study, "fit", force=True)
    again = catalog(study).read("fit:metrics")
    # refitted: the models saved, fitted on all training rows: lr, rf, and the stack's knn (its lr is the learner's)
    assert again["fits"]["fitted"] == 3 and again["fits"]["cached"] == again["fits"]["distinct"] - 3
    for name, rec in metrics["learners"].items():
        assert json.dumps(again["learners"][name]["cv"], sort_keys=True) == json.dumps(rec["cv"], sort_keys=True)
        assert again["learners"][name]["holdout"] == rec["holdout"]


def test_predict_reproduces_the_held_out_probabilities_of_the_saved_stack(fitted, tmp_path):
    root, _, study, design, _ = fitted
    frame = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    held_out = frame[frame.case_id.isin(design.frame.index[design.is_test])].drop(columns=["label"])
    held_out["ultrasound_path"] = [str(root / p) if p else "" for p in held_out.ultrasound_path]
    held_out.to_csv(tmp_path / "new.csv", index=False)
    out = run_predict(study.run_dir, tmp_path / "new.csv", tmp_path / "pred.csv", show_progress=False)
    saved = pd.read_csv(study.run_dir / "models" / "holdout_predictions.csv")
    saved = saved[saved.learner == "stack"].set_index("case_id")
    got = out.set_index("case_id").loc[saved.index]
    for column in [c for c in saved.columns if c.startswith("proba:")]:
        np.testing.assert_allclose(got[column], saved[column], rtol=1e-9, atol=1e-12)
    assert set(out.columns) >= {"predicted", "has:ultrasound"}


def test_predict_manifest_missing_a_modality_column_is_a_clear_error(fitted, tmp_path):
    _, _, study, _, _ = fitted
    pd.DataFrame({"case_id": ["x"], "age": ["50"], "history": ["no"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ManifestError, match="does not match the run: missing column.*ultrasound_path"):
        run_predict(study.run_dir, tmp_path / "bad.csv", tmp_path / "pred.csv", show_progress=False)


def test_tuning_is_nested_in_the_training_folds_and_recorded(fitted):
    _, path, _, design, _ = fitted
    study = _study(path, "label.drop=[unsure]", "fit.learners=[rf]", "fit.stack=false",
                   "fit.tune={rf: {max_depth: [2, 4, null]}}", "fit.tune_iter=2", "output=tuned")
    run(study, "extract", "fuse", "fit")
    metrics = catalog(study).read("fit:metrics")
    notes = metrics["learners"]["rf"]["notes"]
    assert any(n.startswith("tuned: {'model__max_depth'") for n in notes)
    model, _ = catalog(study).model("rf")
    assert len(model.search_.cv_results_["params"]) == 2
    assert model.best_estimator_.memory is None
