"""Between stages, as a user meets them: stale inputs are refused naming the stage to re-run, a killed
fit leaves the previous complete result, dropped models go, config mistakes stop before extract,
two processes share a run folder safely. Each test reproduces a failure of the hand-made stages."""

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.config import load_study
from study_factory import catalog, make_study, run

REPO = Path(__file__).resolve().parents[2]
FIT = {"learners": ["lr"], "stack": False, "ablations": [], "n_boot": 100, "n_jobs": 1, "pca_components": 3,
       "params": {"rf": {"n_estimators": 20}}}
TINY = {"fuse": {"n_folds": 2, "test_size": 0.25}, "fit": FIT}


def cli(*args, env=None):
    """The command line, as a user runs it: in a subprocess where it is to be killed, else in this
    process (the same code path, without paying the imports again)."""
    if env:
        return subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), "--no-progress", *args], cwd=REPO,
                              capture_output=True, text=True, env={**os.environ, **env})
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["--no-progress", *args])
        except Exception:                    # a bug: keep its traceback in stderr, as a subprocess would
            traceback.print_exc(file=err)
            code = 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _fitted(root, n=30):
    path = make_study(root, n=n, backbones=("handcrafted",), extra=TINY)
    study = load_study(path)
    run(study, "extract", "fuse", "fit")
    return path, study


@pytest.fixture
def fitted(tmp_path):
    return _fitted(tmp_path)


def _drop_rows(root, rows):
    frame = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    frame.drop(index=rows).to_csv(root / "manifest.csv", index=False)


def test_an_edited_manifest_makes_fit_report_and_predict_refuse_naming_fuse(fitted, tmp_path):
    path, study = fitted
    new = pd.read_csv(tmp_path / "manifest.csv", dtype=str).drop(columns=["label"]).head(3)
    new["ultrasound_path"] = [str(tmp_path / p) for p in new.ultrasound_path]
    new.to_csv(tmp_path / "new.csv", index=False)
    _drop_rows(tmp_path, [0, 1, 2, 3])
    for args in (["fit", "-c", str(path)], ["report", "-c", str(path)],
                 ["predict", "--run", str(study.run_dir), "--manifest", str(tmp_path / "new.csv"),
                  "--out", str(tmp_path / "p.csv")]):
        out = cli(*args)
        assert out.returncode == 2 and "Traceback" not in out.stderr, (args, out.stderr)
        assert "fuse: it was built from another manifest (30 rows, now 26)" in out.stderr, (args, out.stderr)
        assert "out of date" in out.stderr and "run_pipeline.py run -c" in out.stderr
    assert not (tmp_path / "p.csv").exists() and not (study.run_dir / "reports").exists()


def test_a_corrupted_image_after_a_good_extract_makes_fuse_refuse(fitted, tmp_path):
    path, _ = fitted
    (tmp_path / "images/ultrasound/c003.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image any more")
    out = cli("fuse", "-c", str(path), "--force")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "extract is out of date for fuse" in out.stderr
    assert "1 ultrasound image(s) or mask(s) changed since it ran: line 5 c003" in out.stderr


def test_a_changed_fit_setting_makes_the_report_refuse_the_old_results(fitted):
    path, _ = fitted
    out = cli("report", "-c", str(path), "--set", "fit.learners=[lr, rf]")
    assert out.returncode == 2
    assert "fit is out of date for report" in out.stderr and "fit.learners was ['lr'], now ['lr', 'rf']" in out.stderr


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".staging" not in p.parts}


@pytest.mark.parametrize("point", ["fit:before-models", "fit:after-model", "commit:mid-record"])
def test_a_fit_killed_anywhere_leaves_the_previous_result_and_its_rerun_equals_an_uninterrupted_one(
        fitted, tmp_path, point):
    path, study = fitted
    models = study.run_dir / "models"
    before = _files(models)
    flags = ["--set", "fit.learners=[lr, rf]"]
    killed = cli("fit", "-c", str(path), *flags, env={"BREASTFUSE_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _files(models) == before                                   # nothing of the killed fit is visible
    assert [d["learner"] for d in catalog(study).listed("fit:model")] == ["lr"]
    assert catalog(study).read("fit:metrics")["learners"].keys() == {"lr"}
    again = cli("fit", "-c", str(path), *flags)
    assert again.returncode == 0, again.stderr
    if point != "fit:before-models":       # the killed fit's fits were kept: the re-run reads them
        fits = catalog(study).read("fit:metrics")["fits"]
        # and makes only the two saved models' fits on all training rows (lr, rf); rf's CV folds,
        # which only the killed run had made, come from its cache
        assert fits["fitted"] == 2 and fits["cached"] == fits["distinct"] - 2
    assert cli("extract", "-c", str(path), "--output", str(tmp_path / "fresh")).returncode == 0
    assert cli("fuse", "-c", str(path), "--output", str(tmp_path / "fresh")).returncode == 0
    fresh = cli("fit", "-c", str(path), *flags, "--output", str(tmp_path / "fresh"))
    assert fresh.returncode == 0, fresh.stderr
    for name in ("metrics.csv", "cv_predictions.csv", "holdout_predictions.csv"):
        assert (models / name).read_bytes() == (tmp_path / "fresh/models" / name).read_bytes(), name
    assert not (models / ".staging").exists()


def test_a_fit_killed_after_its_record_is_finished_by_the_next_command(fitted):
    path, study = fitted
    killed = cli("fit", "-c", str(path), "--set", "fit.learners=[lr, rf]",
                 env={"BREASTFUSE_CRASH_AT": "commit:after-record"})
    assert killed.returncode == -signal.SIGKILL
    again = cli("fit", "-c", str(path), "--set", "fit.learners=[lr, rf]")
    assert again.returncode == 0 and "completing the commit of models" in again.stderr
    assert "unchanged" in again.stdout
    assert sorted(d["learner"] for d in catalog(study).listed("fit:model")) == ["lr", "rf"]
    assert not (study.run_dir / "models" / ".staging").exists()


def test_a_dropped_learner_loses_its_model_and_predict_names_the_saved_ones(tmp_path):
    path, study = _fitted(tmp_path)
    assert cli("fit", "-c", str(path), "--set", "fit.learners=[lr, rf]").returncode == 0
    assert (study.run_dir / "models/rf.skops").is_file()
    assert cli("fit", "-c", str(path)).returncode == 0
    assert not (study.run_dir / "models/rf.skops").exists() and not (study.run_dir / "models/rf.json").exists()
    new = pd.read_csv(tmp_path / "manifest.csv", dtype=str).drop(columns=["label"]).head(2)
    new["ultrasound_path"] = [str(tmp_path / p) for p in new.ultrasound_path]
    new.to_csv(tmp_path / "new.csv", index=False)
    out = cli("predict", "--run", str(study.run_dir), "--manifest", str(tmp_path / "new.csv"),
              "--out", str(tmp_path / "p.csv"), "--model", "rf")
    assert out.returncode == 2 and "No saved model 'rf'" in out.stderr and "Saved models: lr." in out.stderr
    ok = cli("predict", "--run", str(study.run_dir), "--manifest", str(tmp_path / "new.csv"),
             "--out", str(tmp_path / "p.csv"), "--model", "lr")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("fit, message", [
    ({"learners": ["lr", "svn"]}, "fit.learners[1]: unknown learner 'svn'; did you mean 'svm'?"),
    ({"params": {"rf": {"n_estimator": 10}}}, "fit.params.rf.n_estimator: unknown parameter of "
                                              "RandomForestClassifier; did you mean 'n_estimators'?"),
    ({"learners": [], "stack": False}, "fit.learners: empty and fit.stack is false: nothing to fit"),
])
def test_a_fit_mistake_stops_extract_before_any_work(tmp_path, fit, message):
    path = make_study(tmp_path, n=4, backbones=("efficientnetb0",), extra={"fit": fit})
    for command in ("extract", "run"):
        out = cli(command, "-c", str(path))
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "run").exists()


def test_a_second_process_waits_for_the_run_folder_or_stops_with_no_wait(tmp_path):
    path = make_study(tmp_path, n=60, backbones=("efficientnetb0", "handcrafted"))
    holder = tmp_path / "run" / ".lock-holder.json"
    first = subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), "--no-progress", "extract", "-c",
                              str(path), "--input-size", "64"], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not holder.exists():
        assert first.poll() is None and time.monotonic() < deadline, "the first extract never held the lock"
        time.sleep(0.05)
    waiting = subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), "--no-progress", "extract", "-c",
                                str(path), "--input-size", "64"], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    refused = cli("extract", "-c", str(path), "--input-size", "64", "--no-wait")
    _, err = first.communicate(timeout=300)
    out, waited_err = waiting.communicate(timeout=300)
    waited = subprocess.CompletedProcess(waiting.args, waiting.returncode, out, waited_err)
    assert first.returncode == 0, err
    assert refused.returncode == 2 and f"is in use by process {first.pid}" in refused.stderr
    assert "(extract, since" in refused.stderr
    assert waited.returncode == 0 and "waiting for run folder" in waited.stderr
    assert "unchanged" in waited.stdout                    # the second found the first's complete result
    for d in catalog(tmp_path / "run").listed("extract:embeddings"):
        assert len(catalog(tmp_path / "run").read("extract:embeddings", **d).case_ids) == 60
    assert not list((tmp_path / "run").rglob("*.tmp-*")) and not holder.exists()


def _mount(*args):
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs to fill (root only); None where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)):
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _leftovers(folder):
    return [p for p in folder.rglob("*") if ".tmp-" in p.name or p.name == ".staging"]


def test_a_full_disk_is_a_clear_error_that_keeps_the_previous_fit(tmp_path, small_disk, monkeypatch):
    path = make_study(tmp_path, n=30, backbones=("handcrafted",), extra=TINY)
    if small_disk is None:                           # no tmpfs here: a writer that meets a full disk
        return _full_disk_monkeypatched(path, monkeypatch, tmp_path)
    out_dir = small_disk / "run"
    for stage in ("extract", "fuse", "fit"):
        assert cli(stage, "-c", str(path), "--output", str(out_dir)).returncode == 0
    before = _files(out_dir / "models")
    used = shutil.disk_usage(small_disk).used       # blocks, not bytes: many small files (the decode cache)
    assert _mount("-o", f"remount,size={used // 1024 + 160}k", str(small_disk))
    out = cli("fit", "-c", str(path), "--output", str(out_dir), "--set", "fit.learners=[lr, rf]",
              "--set", "fit.params.rf.n_estimators=400")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "No space left on device" in out.stderr and "free there" in out.stderr and str(out_dir) in out.stderr
    assert _files(out_dir / "models") == before and not _leftovers(out_dir)


def _full_disk_monkeypatched(path, monkeypatch, tmp_path):
    import errno

    import skops.io

    from pipeline.cli import main

    run(load_study(path), "extract", "fuse")

    def full(obj, filename, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(filename))

    monkeypatch.setattr(skops.io, "dump", full)
    assert main(["--no-progress", "fit", "-c", str(path)]) == 2
    assert not _leftovers(tmp_path / "run") and not (tmp_path / "run/models/stage.json").exists()


def test_a_read_only_run_folder_is_a_clear_error_before_any_work(tmp_path):
    path = make_study(tmp_path, n=30, backbones=("handcrafted",), extra=TINY)
    run_dir = tmp_path / "run"
    run(load_study(path), "extract", "fuse", "fit")
    before = _files(run_dir / "models")
    if _mount("--bind", str(run_dir), str(run_dir)) and _mount("-o", "remount,bind,ro", str(run_dir)):
        try:
            results = [cli(stage, "-c", str(path), "--force") for stage in ("extract", "fit")]
        finally:
            subprocess.run(["umount", "-l", str(run_dir)], capture_output=True)
    elif os.geteuid() != 0:
        os.chmod(run_dir, 0o555)
        try:
            results = [cli(stage, "-c", str(path), "--force") for stage in ("extract", "fit")]
        finally:
            os.chmod(run_dir, 0o755)
    else:
        pytest.fail("cannot make a read-only folder here (no mount, running as root)")
    for out in results:
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "Read-only file system" in out.stderr or "Permission denied" in out.stderr
        assert str(run_dir) in out.stderr and "embedding" not in out.stderr
    assert _files(run_dir / "models") == before and not _leftovers(run_dir)


def test_every_stage_folder_lists_exactly_its_files_in_its_record(fitted):
    _, study = fitted
    for stage in ("extract", "fuse", "fit"):
        record = catalog(study).record(stage)
        folder = catalog(study).folder(stage)
        on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts)} - {"stage.json"}
        assert on_disk == set(record.outputs), stage


def test_a_file_changed_behind_the_record_is_refused_naming_its_stage(fitted):
    path, study = fitted
    metrics = study.run_dir / "models" / "metrics.json"
    metrics.write_text(metrics.read_text().replace('"lr"', '"rf"'))
    out = cli("report", "-c", str(path))
    assert out.returncode == 2 and "was changed after fit wrote it" in out.stderr and "--force" in out.stderr


def test_the_run_record_holds_the_resolved_study_and_each_stages_flags(fitted, tmp_path):
    path, study = fitted
    neutral = cli("fit", "-c", str(path), "--n-jobs", "2")
    assert neutral.returncode == 0 and "unchanged" in neutral.stdout      # n_jobs changes no number
    assert cli("fit", "-c", str(path), "--n-jobs", "2", "--force").returncode == 0
    record = catalog(study).run_record()
    assert record.study == study.to_dict() | {"fit": {**study.to_dict()["fit"], "n_jobs": 2}}
    assert record.flags("fit") == ["fit.n_jobs=2"] and record.flags("extract") == []
    assert record.weights("handcrafted")["identity"].startswith("handcrafted-v")
    assert yaml.safe_load(yaml.safe_dump(record.study))["manifest"] == str(study.manifest_path)


def test_predict_reads_the_run_folder_it_is_given_even_when_moved(fitted, tmp_path):
    path, study = fitted
    moved = tmp_path / "moved-run"
    shutil.copytree(study.run_dir, moved)
    new = pd.read_csv(tmp_path / "manifest.csv", dtype=str).drop(columns=["label"]).head(2)
    new["ultrasound_path"] = [str(tmp_path / p) for p in new.ultrasound_path]
    new.to_csv(tmp_path / "new.csv", index=False)
    shutil.rmtree(study.run_dir)
    out = cli("predict", "--run", str(moved), "--manifest", str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv"),
              "--model", "lr")
    assert out.returncode == 0, out.stderr
    assert (moved / "predict").is_dir() and not study.run_dir.exists()


def test_explain_before_fit_says_what_to_run_first(tmp_path):
    path = make_study(tmp_path, n=30, backbones=("handcrafted",), extra=TINY)
    run(load_study(path), "extract", "fuse")
    out = cli("explain", "-c", str(path))
    assert out.returncode == 2 and "No fitted models in" in out.stderr and "run_pipeline.py fit -c" in out.stderr
