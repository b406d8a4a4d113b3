"""A run killed with SIGKILL leaves only readable files, and the next run finishes with
embeddings identical to an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

from features.store import read_table
from study_factory import make_study

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli(*args):
    return [sys.executable, os.path.join(REPO, "run_pipeline.py"), "--no-progress", "-q", *args]


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path):
    study = make_study(tmp_path, n=40, backbones=("resnet50", "handcrafted"))
    flags = ["extract", "-c", str(study), "--set", "extract.checkpoint_seconds=0", "--batch-size", "2"]
    features = tmp_path / "run" / "features" / "ultrasound"
    checkpoints = tmp_path / "run" / "features" / ".checkpoints" / "ultrasound"
    proc = subprocess.Popen(_cli(*flags), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (checkpoints / "resnet50.h5").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    for path in [*features.glob("*.h5"), *checkpoints.glob("*.h5")]:
        with h5py.File(path, "r") as f:  # every file left behind opens
            assert f["embeddings"].shape[0] == len(f["case_ids"])
    done_before = len(read_table(checkpoints / "resnet50.h5").case_ids)
    assert 0 < done_before < 40

    resumed = subprocess.run(_cli(*flags), cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    fresh = subprocess.run(_cli(*flags, "--output", str(tmp_path / "fresh")), cwd=REPO,
                           capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    for backbone in ("resnet50", "handcrafted"):
        a = read_table(features / f"{backbone}.h5")
        b = read_table(tmp_path / "fresh/features/ultrasound" / f"{backbone}.h5")
        assert a.case_ids == b.case_ids and len(a.case_ids) == 40
        np.testing.assert_array_equal(a.embeddings, b.embeddings)
    assert not checkpoints.exists() and not list(features.parent.rglob("*.tmp-*"))
    assert not (features.parent / ".staging").exists()
