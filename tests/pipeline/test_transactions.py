"""The floor under every stage: staged commits, recovery after a kill, the hash cache's fast path,
the run lock, and operating-system failures as user errors."""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.catalog import Catalog
from pipeline.contract import Artifact, Stage
from pipeline.errors import RunLockedError, StageInputError
from pipeline.hashcache import HashCache
from pipeline.lock import HOLDER_FILE, run_lock
from pipeline.records import RECORD, StageRecord, read_record
from pipeline.storage import storage_error
from pipeline.transaction import STAGING, Staging, recover

FAKE = Stage(name="fit", version=1, folder="models", noun="fitted models", summary="", description="",
             config=(), writes=(Artifact("model", "{learner}.skops"), Artifact("metrics", "metrics.json")))


def _record():
    return StageRecord(stage="fit", version=1, fingerprint="f", inputs={}, outputs={})


def _commit(run_dir, files, previous=None):
    staging = Staging(run_dir, FAKE, previous).open()
    for learner, text in files.items():
        staging.write_text("model", text, learner=learner)
    return staging.commit(_record())


def test_a_commit_lists_every_output_with_its_hash_and_removes_what_it_no_longer_lists(tmp_path):
    first = _commit(tmp_path, {"lr": "a", "rf": "b"})
    assert set(first.outputs) == {"lr.skops", "rf.skops"}
    assert first.outputs["lr.skops"]["bytes"] == 1
    second = _commit(tmp_path, {"lr": "c"}, first)
    assert set(second.outputs) == {"lr.skops"}
    assert not (tmp_path / "models/rf.skops").exists() and (tmp_path / "models/lr.skops").read_text() == "c"
    assert read_record(tmp_path / "models" / RECORD).outputs == second.outputs
    assert not (tmp_path / "models" / STAGING).exists()


def test_a_carried_file_stays_listed_without_being_rewritten(tmp_path):
    first = _commit(tmp_path, {"lr": "a"})
    before = (tmp_path / "models/lr.skops").stat().st_mtime_ns
    staging = Staging(tmp_path, FAKE, first).open()
    staging.carry("model", learner="lr")
    staging.write_text("model", "x", learner="et")
    second = staging.commit(_record())
    assert set(second.outputs) == {"lr.skops", "et.skops"}
    assert (tmp_path / "models/lr.skops").stat().st_mtime_ns == before


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_recovery_drops_an_uncommitted_staging_area_and_finishes_a_committed_one(tmp_path):
    first = _commit(tmp_path, {"lr": "old"})
    dead = _dead_pid()
    uncommitted = tmp_path / "models" / STAGING / f"{dead}-aaaa"
    uncommitted.mkdir(parents=True)
    (uncommitted / "rf.skops").write_text("half")
    recover(tmp_path)
    assert not uncommitted.exists() and read_record(tmp_path / "models" / RECORD).outputs == first.outputs

    committed = tmp_path / "models" / STAGING / f"{dead}-bbbb"
    committed.mkdir(parents=True)
    (committed / "lr.skops").write_text("new")
    record = _record()
    record.outputs = {"lr.skops": {"sha256": "x", "bytes": 3}}
    (committed / RECORD).write_text(record.to_json())
    recover(tmp_path)
    assert (tmp_path / "models/lr.skops").read_text() == "new"
    assert read_record(tmp_path / "models" / RECORD).outputs == record.outputs
    assert not (tmp_path / "models" / STAGING).exists()


def test_recovery_never_touches_a_live_process_staging_area_or_temporary_file(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        mine = tmp_path / "models" / STAGING / f"{sleeper.pid}-cccc"
        mine.mkdir(parents=True)
        tmp = tmp_path / "models" / f".x.json.tmp-{sleeper.pid}"
        tmp.write_text("writing")
        stale_tmp = tmp_path / "models" / f".y.json.tmp-{_dead_pid()}"
        stale_tmp.write_text("left by a killed writer")
        recover(tmp_path)
        assert mine.is_dir() and tmp.is_file() and not stale_tmp.exists()
    finally:
        sleeper.kill()


def test_a_reader_refuses_a_file_changed_behind_its_record(tmp_path):
    _commit(tmp_path, {"lr": "a"})
    catalog = Catalog(tmp_path)
    assert catalog.verified("fit:model", learner="lr").read_text() == "a"
    (tmp_path / "models/lr.skops").write_text("b")
    with pytest.raises(StageInputError, match="was changed after fit wrote it"):
        Catalog(tmp_path).verified("fit:model", learner="lr")
    with pytest.raises(StageInputError, match="have no rf.skops"):
        catalog.verified("fit:model", learner="rf")


def test_the_hash_cache_catches_a_same_size_change_with_its_mtime_put_back(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"aaaa")
    old = time.time() - 3600
    os.utime(path, (old, old))
    cache = HashCache(tmp_path / "hashes.json")
    first = cache.sha256(path)
    cache.entries[str(path.resolve())][4] = time.time()    # pretend it was hashed long after the write
    assert cache.sha256(path) == first                     # the fast path serves it
    path.write_bytes(b"bbbb")
    os.utime(path, (old, old))                             # same size, same mtime: only ctime moved
    assert cache.sha256(path) != first


def test_the_hash_cache_does_not_trust_an_entry_taken_right_after_a_write(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("x")
    cache = HashCache(None)
    cache.sha256(path)
    assert cache._cached(str(path.resolve()), os.stat(path)) is None     # racy: re-hashed next time


def test_a_second_process_is_told_who_holds_the_run(tmp_path):
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "from pipeline.lock import run_lock\n"
            "with run_lock(%r, 'fit'):\n    print('held', flush=True); time.sleep(30)\n") % (
        str(Path(__file__).resolve().parents[2]), str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=rf"in use by process {holder.pid} on .* \(fit, since"):
            with run_lock(tmp_path, "report", wait=False):
                pass
        info = json.loads((tmp_path / HOLDER_FILE).read_text())
        assert info["pid"] == holder.pid and info["stage"] == "fit"
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path, "report", wait=False):      # the dead holder's lock is gone with it
        with run_lock(tmp_path, "report", wait=False):  # re-entrant within one process
            pass


@pytest.mark.parametrize("exc, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/run/models/.staging/1-ab/rf.skops"),
     ["No space left on device", "free there"]),
    (OSError(None, "Unable to create file (unable to open file: name = '/run/x.h5', errno = 30, error message = "
                   "'Read-only file system')"), ["Read-only file system", "read-only"]),
    (PermissionError(errno.EACCES, "Permission denied", "/run/models/stage.json"), ["Permission denied"]),
])
def test_operating_system_failures_become_one_clear_message(exc, words):
    error = storage_error(exc, "fit (writing its results in /run/models)")
    text = str(error)
    assert text.startswith("Cannot finish fit (writing its results in /run/models)")
    assert all(w in text for w in words), text
