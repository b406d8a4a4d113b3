"""Saved models through the commands: a swapped or damaged model file is exit 2 naming it (its
payload never runs, even with the stage record made to match it), and an older run's pickled
models give the migration message, load with --trust-pickle, and are replaced by the next fit."""

import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest

from pipeline.config import load_study
from study_factory import catalog, make_study, run
from tampering import pickle_with_payload, restamp, skops_with_payload

REPO = Path(__file__).resolve().parents[2]
FIT = {"learners": ["lr", "rf"], "stack": False, "ablations": [], "n_boot": 100, "n_jobs": 1,
       "pca_components": 5, "params": {"rf": {"n_estimators": 10}}}
MIGRATE = "made by an older BreastFuse: re-run fit, or `--trust-pickle` if you made this file yourself"


@pytest.fixture(scope="module")
def fitted_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fitted")
    path = make_study(root, n=32, extra={"fuse": {"n_folds": 3, "test_size": 0.25}, "fit": FIT,
                                         "report": {"shap": True}})
    run(load_study(path), "extract", "fuse", "fit")
    shutil.copytree(root / "run", root / "run.committed")
    new = pd.read_csv(root / "manifest.csv", dtype=str).drop(columns=["label"]).head(3)
    new["ultrasound_path"] = [str(root / p) for p in new.ultrasound_path]
    new.to_csv(root / "new.csv", index=False)
    return root


@pytest.fixture
def fitted(fitted_root):
    """The fitted study to tamper with (its run folder is put back afterwards; the run record
    names the run folder by its absolute path, so a copy would not be read): (study file, study,
    new-cases manifest)."""
    path = fitted_root / "study.yaml"
    yield path, load_study(path), fitted_root / "new.csv"
    shutil.rmtree(fitted_root / "run")
    shutil.copytree(fitted_root / "run.committed", fitted_root / "run")


def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), "--no-progress", *args], cwd=REPO,
                          capture_output=True, text=True)


def _predict(study, new, *flags):
    out = study.run_dir.parent / f"pred{len(flags)}.csv"
    return _cli("predict", "--run", str(study.run_dir), "--manifest", str(new), "--out", str(out),
                "--model", "lr", *flags), out


def _refused(result):
    return result.returncode == 2 and "Traceback" not in result.stderr


def test_predict_refuses_a_model_file_naming_an_untrusted_type_and_its_payload_never_runs(fitted, tmp_path):
    _, study, new = fitted
    model, marker = study.run_dir / "models" / "lr.skops", tmp_path / "ran"
    skops_with_payload(model, marker)
    restamp(model.parent, "lr.skops")                   # the record agrees: only the type check is left
    result, _ = _predict(study, new)
    assert _refused(result), result.stderr
    assert f"{model} holds types BreastFuse does not load" in result.stderr and "subprocess.Popen" in result.stderr
    assert not marker.exists()


def test_predict_refuses_a_pickle_swapped_in_for_a_model_file_without_running_it(fitted, tmp_path):
    _, study, new = fitted
    model, marker = study.run_dir / "models" / "lr.skops", tmp_path / "ran"
    pickle_with_payload(model, marker)
    restamp(model.parent, "lr.skops")
    result, _ = _predict(study, new)
    assert _refused(result), result.stderr
    assert f"{model} cannot be loaded as a model" in result.stderr
    assert not marker.exists()


def test_a_corrupt_model_file_is_exit_2_naming_it_and_the_stage_to_rerun(fitted):
    _, study, new = fitted
    model = study.run_dir / "models" / "lr.skops"
    model.write_bytes(model.read_bytes()[:-200])
    restamp(model.parent, "lr.skops")
    result, _ = _predict(study, new)
    assert _refused(result), result.stderr
    assert f"{model} cannot be loaded as a model: not a readable model file (corrupt or truncated" in result.stderr
    assert "run_pipeline.py fit -c" in result.stderr and "--force" in result.stderr


def _as_older_run(study):
    """Turn the run's models into what an older BreastFuse saved: joblib pickles, in its record."""
    folder = study.run_dir / "models"
    for learner in ("lr", "rf"):
        model, _ = catalog(study).model(learner)
        joblib.dump(model, folder / f"{learner}.joblib")
        (folder / f"{learner}.skops").unlink()
        restamp(folder, f"{learner}.joblib", old_rel=f"{learner}.skops")


def test_an_older_runs_pickled_model_gives_the_migration_message_and_loads_with_trust_pickle(fitted):
    _, study, new = fitted
    before, out = _predict(study, new)
    assert before.returncode == 0, before.stderr
    expected = pd.read_csv(out)
    _as_older_run(study)
    refused, _ = _predict(study, new)
    assert _refused(refused), refused.stderr
    assert MIGRATE in refused.stderr and str(study.run_dir / "models" / "lr.joblib") in refused.stderr
    trusted, out = _predict(study, new, "--trust-pickle")
    assert trusted.returncode == 0, trusted.stderr
    pd.testing.assert_frame_equal(pd.read_csv(out), expected)


def test_report_on_an_older_run_needs_trust_pickle_and_the_next_fit_saves_skops_files(fitted):
    path, study, _ = fitted
    _as_older_run(study)
    refused = _cli("report", "-c", str(path))
    assert _refused(refused), refused.stderr
    assert MIGRATE in refused.stderr
    trusted = _cli("report", "-c", str(path), "--trust-pickle")
    assert trusted.returncode == 0, trusted.stderr
    again = _cli("fit", "-c", str(path))
    assert again.returncode == 0 and "unchanged" not in again.stdout, again.stderr
    models = study.run_dir / "models"
    assert sorted(p.name for p in models.glob("*.skops")) == ["lr.skops", "rf.skops"]
    assert not list(models.glob("*.joblib"))
