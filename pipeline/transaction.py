"""A stage's outputs as one transaction: staged, committed by writing its record, then applied.

A stage writes into its own staging folder (``<run>/<folder>/.staging/<pid>-<token>/``, per process).
The commit point is the rename of the new record into that folder; then every output moves into
place, the run record and the stage record last, and files the new record does not list are
removed. A process killed before the commit point leaves the previous record and its files
untouched (its staging folder is removed by the next run); one killed after it is rolled forward
by the next run, so readers — who hold the run lock — see the old result or the new one, never a mix.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
from pathlib import Path

import pandas as pd

from features.hashing import file_sha256
from pipeline.records import RECORD, RUN_RECORD, jsonable, read_record
from pipeline.storage import check_writable, fsync_dir, fsync_file

log = logging.getLogger(__name__)
STAGING = ".staging"
CHECKPOINTS = ".checkpoints"
_RUN_RECORD_STAGED = ".run.json"


def crash_point(name):
    """Test hook: BREASTFUSE_CRASH_AT=<name> kills this process right here with SIGKILL, so tests can
    interrupt a stage at an exact point (between two models, in the middle of the record write)."""
    if os.environ.get("BREASTFUSE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Staging:
    """Where one stage run writes; only the artifacts its stage declares."""

    def __init__(self, run_dir, stage, previous=None):
        self.run_dir = Path(run_dir)
        self.stage = stage
        self.folder = self.run_dir / stage.folder
        self.dir = self.folder / STAGING / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.previous = previous
        self.carried = {}
        self.committed = False

    def open(self):
        """Create the staging folder, proving the run folder is writable before any work."""
        check_writable(self.dir, f"{self.stage.name}: preparing {self.folder}")
        return self

    def relative(self, artifact, **fields):
        return self.stage.artifact(artifact).pattern.format(**fields)

    def path(self, artifact, **fields):
        """Where to write one declared artifact (its folder is made)."""
        path = self.dir / self.relative(artifact, **fields)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def checkpoint_path(self, artifact, **fields):
        """Where partial results of an artifact survive a killed or failed run (until committed)."""
        return self.folder / CHECKPOINTS / self.relative(artifact, **fields)

    def drop_checkpoints(self):
        """Once the committed files hold everything, the checkpoints are no longer needed."""
        shutil.rmtree(self.folder / CHECKPOINTS, ignore_errors=True)

    def scratch(self, name):
        """A scratch folder inside the staging area, never committed (e.g. a fit's fusion cache)."""
        path = self.dir / f".{name}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def final_path(self, artifact, **fields):
        """Where the artifact will be once committed (for messages and summaries)."""
        return self.folder / self.relative(artifact, **fields)

    def carry(self, artifact, **fields):
        """Keep the committed file of the previous record as an output of this one, unchanged."""
        rel = self.relative(artifact, **fields)
        entry = (self.previous.outputs if self.previous else {}).get(rel)
        if entry is None:
            raise KeyError(f"{self.stage.name}: cannot carry {rel}: the previous record does not list it")
        self.carried[rel] = entry

    def write_text(self, artifact, text, **fields):
        path = self.path(artifact, **fields)
        path.write_text(text, encoding="utf-8")
        return path

    def write_json(self, artifact, obj, **fields):
        return self.write_text(artifact, json.dumps(obj, indent=2, default=jsonable), **fields)

    def write_csv(self, artifact, frame: pd.DataFrame, **fields):
        return self.write_text(artifact, frame.to_csv(index=False), **fields)

    def discard(self):
        """Drop an uncommitted staging area (a committed one is left for ``recover`` to finish)."""
        if self.committed:
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        _remove_if_empty(self.dir.parent)

    def _staged_files(self):
        for path in sorted(self.dir.rglob("*")):
            rel = path.relative_to(self.dir).as_posix()
            if path.is_file() and not rel.startswith(".") and ".tmp-" not in path.name:
                yield rel, path

    def commit(self, record, run_record=None):
        """Hash and fsync every output, write the record (the commit point), then apply it."""
        outputs = dict(self.carried)
        for rel, path in self._staged_files():
            fsync_file(path)
            outputs[rel] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
        record.outputs = dict(sorted(outputs.items()))
        if run_record is not None:
            _write_durably(self.dir / _RUN_RECORD_STAGED, run_record.to_json())
        crash_point("commit:before-record")
        _write_durably(self.dir / RECORD, record.to_json(), crash="commit:mid-record")
        self.committed = True
        crash_point("commit:after-record")
        apply_commit(self.dir, self.folder, self.run_dir)
        return record


def _write_durably(path, text, crash=None):
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    data = text.encode("utf-8")
    with open(tmp, "wb") as fh:
        if crash and os.environ.get("BREASTFUSE_CRASH_AT") == crash:
            fh.write(data[: len(data) // 2])
            fh.flush()
            crash_point(crash)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def apply_commit(staging, folder, run_dir):
    """Move a committed staging folder's outputs into place (idempotent: a rerun after a crash
    finishes the job), the record last, then drop what the record no longer lists."""
    record = read_record(staging / RECORD)
    for rel in record.outputs:
        src = staging / rel
        if src.is_file():
            dst = folder / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    if (staging / _RUN_RECORD_STAGED).is_file():
        os.replace(staging / _RUN_RECORD_STAGED, Path(run_dir) / RUN_RECORD)
        fsync_dir(run_dir)
    os.replace(staging / RECORD, folder / RECORD)
    fsync_dir(folder)
    _remove_unlisted(folder, set(record.outputs))
    shutil.rmtree(staging, ignore_errors=True)
    _remove_if_empty(staging.parent)


def _remove_unlisted(folder, listed):
    """Outputs of an older record that the new one does not list (a dropped learner's model)."""
    for path in sorted(folder.rglob("*"), reverse=True):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or rel.as_posix() == RECORD:
            continue
        if path.is_file() and rel.as_posix() not in listed:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _remove_if_empty(folder):
    try:
        folder.rmdir()
    except OSError:
        pass


def _owner(name):
    try:
        return int(name.split("-", 1)[0])
    except ValueError:
        return None


def recover(run_dir):
    """Finish or drop what killed processes left: committed staging folders are rolled forward,
    uncommitted ones removed, and their temporary files deleted. Run under the run lock; a staging
    folder of a process still alive is never touched."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for folder in sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        staging_root = folder / STAGING
        if staging_root.is_dir():
            for staging in sorted(staging_root.iterdir()):
                pid = _owner(staging.name)
                if pid is not None and pid != os.getpid() and pid_alive(pid):
                    log.warning("leaving %s alone: process %d that wrote it is still running", staging, pid)
                    continue
                if read_record(staging / RECORD) is not None:
                    log.warning("completing the commit of %s interrupted earlier (process %s)", folder.name, pid)
                    apply_commit(staging, folder, run_dir)
                else:
                    shutil.rmtree(staging, ignore_errors=True)
            _remove_if_empty(staging_root)
        _remove_dead_temporaries(folder)
    _remove_dead_temporaries(run_dir, recursive=False)


def _remove_dead_temporaries(folder, recursive=True):
    for tmp in (folder.rglob("*.tmp-*") if recursive else folder.glob("*.tmp-*")):
        pid = _owner(tmp.name.rsplit(".tmp-", 1)[-1])
        if tmp.is_file() and pid is not None and pid != os.getpid() and not pid_alive(pid):
            tmp.unlink(missing_ok=True)
