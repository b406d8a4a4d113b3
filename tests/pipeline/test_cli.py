"""The CLI: user errors print one clear message, no traceback, exit code 2."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from study_factory import make_study

REPO = Path(__file__).resolve().parents[2]


def _run(*args):
    return subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), "--no-progress", *args],
                          cwd=REPO, capture_output=True, text=True)


def test_bad_manifest_lists_every_problem_exits_2_without_traceback(tmp_path):
    study = make_study(tmp_path, n=5)
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame.loc[0, "ultrasound_path"] = "missing.png"
    frame.loc[2, "age"] = "old"
    frame.loc[3, "case_id"] = frame.loc[4, "case_id"]
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    out = _run("extract", "-c", str(study))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "has 3 problem(s)" in out.stderr
    assert "line 2, column 'ultrasound_path': missing.png: file not found" in out.stderr
    assert "line 4, column 'age': 'old' is not a number" in out.stderr
    assert "appears more than once (lines 5, 6)" in out.stderr
    assert not (tmp_path / "run").exists()


def test_bad_config_exits_2_naming_the_keys(tmp_path):
    study = make_study(tmp_path, n=2)
    raw = yaml.safe_load(study.read_text())
    raw["extract"]["batch_size"] = -1
    raw["extrct"] = {}
    study.write_text(yaml.safe_dump(raw))
    out = _run("extract", "-c", str(study))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "extract.batch_size: expected a positive integer, got -1" in out.stderr
    assert "extrct: unknown key; did you mean 'extract'?" in out.stderr


def test_flags_override_the_study_file(tmp_path):
    study = make_study(tmp_path, n=3, backbones=("handcrafted",))
    out = _run("extract", "-c", str(study), "--output", str(tmp_path / "elsewhere"), "--set",
               "modalities.ultrasound.preprocessing.clahe=false")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "elsewhere/features/ultrasound/handcrafted.h5").is_file()


def test_unknown_command_is_an_argparse_error():
    out = _run("fuse-everything")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_fit_before_fuse_says_which_stage_to_run(tmp_path):
    study = make_study(tmp_path, n=3)
    out = _run("fit", "-c", str(study))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "No fused design" in out.stderr and "run_pipeline.py fuse" in out.stderr


def test_unknown_learner_is_a_config_error(tmp_path):
    from pipeline.config import load_study
    from pipeline.errors import ConfigError

    path = make_study(tmp_path, n=2, extra={"fit": {"learners": ["rf", "randomforest"], "params": {"svn": {}}}})
    try:
        load_study(path)
    except ConfigError as exc:
        assert "randomforest" in str(exc) and "svn" in str(exc) and "knn" in str(exc)
    else:
        raise AssertionError("no error for unknown learners")


def test_run_does_every_stage_then_redoes_nothing(tmp_path):
    fit = {"learners": ["lr", "knn"], "stack_base": ["lr", "knn"], "ablations": [], "n_boot": 100,
           "n_jobs": 1, "pca_components": 3}
    study = make_study(tmp_path, n=80, backbones=("handcrafted",),   # enough for the stack's inner folds
                       extra={"fuse": {"n_folds": 2, "test_size": 0.25}, "fit": fit,
                              "explain": {"grid": 2, "cases": 1}})
    out = _run("run", "-c", str(study), "--no-shap")
    assert out.returncode == 0, out.stderr
    run = tmp_path / "run"
    made = [run / "features/ultrasound/handcrafted.h5", run / "fused/design.json", run / "models/stack.skops",
            run / "explain/occlusion.npz", run / "reports/report.html"]
    assert all(p.is_file() for p in made), [p for p in made if not p.is_file()]
    assert "stack" in out.stdout and str(run / "reports/report.html") in out.stdout
    stamps = {p: p.stat().st_mtime_ns for p in made[:4]}
    again = _run("run", "-c", str(study), "--no-shap")
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in made[:4]} == stamps      # every cached stage skipped
    assert "unchanged (fingerprint matches)" in again.stderr
