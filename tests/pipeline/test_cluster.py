"""Extraction and cross-validation on a real Dask cluster (a LocalCluster of 2 worker processes,
1 thread each): the same embeddings and metrics as a local run, a worker killed mid-extract, and a
scheduler that does not answer."""

import os
import signal
import time

import numpy as np
import pytest

from pipeline import cluster_extract
from pipeline.config import load_study
from pipeline.errors import ConfigError
from study_factory import catalog, make_study, run

BACKBONES = ["handcrafted", "efficientnetb0"]


@pytest.fixture(scope="module")
def scheduler():
    distributed = pytest.importorskip("distributed")  # installed by requirements-common.txt; CI has it
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c.scheduler_address


def _weights_file(folder):
    """EfficientNet-B0 weights saved to a file, as a real cluster's workers load them."""
    from features.backbones import build_embedder, resolve_weights

    embedder = build_embedder("efficientnetb0", resolve_weights("efficientnetb0", "random", seed=5), input_size=32)
    path = folder / "efficientnetb0_notop.weights.h5"
    embedder.model.save_weights(path)
    return path


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    backbones = ["handcrafted", {"name": "efficientnetb0", "weights": str(_weights_file(root))}]
    study = load_study(make_study(root, n=24), [(["extract", "backbones"], backbones), (["extract", "batch_size"], 4),
                                                (["fit", "learners"], ["lr", "knn"]), (["fit", "stack_base"], ["lr", "knn"]),
                                                (["fit", "ablations"], []), (["fuse", "n_folds"], 3)])
    run(study, "extract", "fuse", "fit")
    return study


def _embeddings(study):
    return {b: catalog(study).read("extract:embeddings", modality="ultrasound", backbone=b) for b in BACKBONES}


def _same_embeddings(a, b):
    for name in BACKBONES:
        assert a[name].case_ids == b[name].case_ids and a[name].keys == b[name].keys
        np.testing.assert_array_equal(a[name].embeddings, b[name].embeddings)


def _elsewhere(study, tmp_path, **extract):
    return study.with_overrides([(["output"], str(tmp_path / "run"))] + [(["extract", k], v) for k, v in extract.items()])


def test_extract_on_a_cluster_gives_the_local_embeddings_and_notes_the_cluster(local_run, scheduler, tmp_path):
    remote = _elsewhere(local_run, tmp_path, scheduler=scheduler)
    outcome = run(remote, "extract")["extract"]
    assert outcome.summary["cluster"]["workers"] == 2 and outcome.summary["cluster"]["scheduler"] == scheduler
    assert outcome.summary["computed"] == {"ultrasound/handcrafted": 24, "ultrasound/efficientnetb0": 24}
    _same_embeddings(_embeddings(local_run), _embeddings(remote))


def test_fit_on_a_cluster_gives_byte_identical_metrics(local_run, scheduler):
    before = (local_run.run_dir / "models" / "metrics.csv").read_bytes()
    held = (local_run.run_dir / "models" / "holdout_predictions.csv").read_bytes()
    outcome = run(local_run.with_overrides([(["fit", "scheduler"], scheduler)]), "fit", force=True)["fit"]
    assert outcome.summary["cluster"]["workers"] == 2
    assert (local_run.run_dir / "models" / "metrics.csv").read_bytes() == before
    assert (local_run.run_dir / "models" / "holdout_predictions.csv").read_bytes() == held


def test_a_worker_killed_mid_extract_loses_only_its_shard(local_run, scheduler, tmp_path, monkeypatch):
    killed = []

    def kill_one(client):
        pids = client.run(os.getpid)
        address, pid = sorted(pids.items())[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(address)
    monkeypatch.setattr(cluster_extract, "after_first_shard", kill_one)
    remote = _elsewhere(local_run, tmp_path, scheduler=scheduler, decode_cache=False)
    outcome = run(remote, "extract")["extract"]
    assert killed and sum(outcome.summary["computed"].values()) == 48
    _same_embeddings(_embeddings(local_run), _embeddings(remote))


def test_a_scheduler_that_does_not_answer_is_a_clear_error_within_seconds(local_run, tmp_path):
    remote = _elsewhere(local_run, tmp_path, scheduler="tcp://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="no Dask scheduler answered at tcp://127.0.0.1:9"):
        run(remote, "extract")
    assert time.monotonic() - start < 20


def test_scheduler_settings_are_checked_at_load(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_study(make_study(tmp_path), [(["extract", "scheduler"], "dask-local:0"), (["fit", "scheduler"], "slurm")])
    assert "extract.scheduler: expected 'local', 'dask-local:N'" in str(err.value)
    assert "fit.scheduler: expected" in str(err.value)


def _random_weights_digest():
    from features.backbones import build_embedder, resolve_weights

    embedder = build_embedder("efficientnetb0", resolve_weights("efficientnetb0", "random", seed=3), input_size=32)
    return [float(np.abs(w.numpy()).sum()) for w in embedder.model.weights]


def test_seeded_random_weights_built_in_a_worker_equal_the_local_ones(scheduler):
    """Unseeded Keras initializers draw from Python's global random, which a worker's event loop
    also draws from: the construction must not depend on it."""
    from distributed import Client

    with Client(scheduler) as client:
        remote = client.submit(_random_weights_digest, pure=False).result()
    assert remote == _random_weights_digest()
