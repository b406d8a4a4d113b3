"""One writer per run folder (``filelock``): a second process waits, saying who holds the run.

The holder writes who it is (pid, host, stage, since when) beside the lock, so the waiting process
can tell the user; ``wait=False`` turns waiting into an error. The lock is re-entrant within a
process (``run`` holds it across its stages).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from pipeline.errors import RunLockedError
from pipeline.storage import os_errors_as_user_errors, write_atomic

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"
HOLDER_FILE = ".lock-holder.json"
_held = {}
_guard = threading.Lock()


def holder(run_dir):
    """Who holds the run (a dict), or None."""
    try:
        return json.loads((Path(run_dir) / HOLDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _describe(info):
    if not info:
        return "another process"
    return (f"process {info.get('pid')} on {info.get('host')} ({info.get('stage')}, since "
            f"{info.get('since')})")


@contextmanager
def run_lock(run_dir, stage, wait=True):
    """Hold ``run_dir``'s lock for the block (re-entrant in this process)."""
    run_dir = Path(run_dir).resolve()
    key = str(run_dir)
    with _guard:
        if key in _held:
            _held[key][1] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _guard:
                _held[key][1] -= 1
        return
    with os_errors_as_user_errors(f"{stage}: locking the run folder", run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(run_dir / LOCK_FILE, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            who = _describe(holder(run_dir))
            if not wait:
                raise RunLockedError(f"Run folder {run_dir} is in use by {who}.",
                                     hint="Wait for it to finish, or run without --no-wait to wait for it.") \
                    from None
            log.warning("waiting for run folder %s: it is in use by %s", run_dir, who)
            lock.acquire()
        write_atomic(run_dir / HOLDER_FILE, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "stage": stage,
            "since": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}))
    with _guard:
        _held[key] = [lock, 1]
    try:
        yield
    finally:
        with _guard:
            del _held[key]
        (run_dir / HOLDER_FILE).unlink(missing_ok=True)
        lock.release()
