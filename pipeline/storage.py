"""Writing files safely, and operating-system failures as user errors.

One atomic writer (a per-process temporary name, fsync, rename, fsync of the folder) for every file
BreastFuse writes outside a stage's staging area, and one translation of ``OSError`` (disk full,
read-only folder, permission denied) into a message naming the path, what was being written and,
for a full disk, how much space is left.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from features.store import fsync_dir  # noqa: F401  (one durable-rename helper for every writer)
from pipeline.errors import StorageError

_ERRNO_IN_TEXT = re.compile(r"errno\s*=\s*(\d+)")
_HINTS = {
    errno.ENOSPC: "Free some space there (or point --output at a disk with room) and run again; "
                  "everything committed before is intact.",
    errno.EDQUOT: "Your disk quota is used up: free some space and run again.",
    errno.EROFS: "The folder is on a read-only file system: choose a writable run folder with --output "
                 "(or copy the run folder somewhere writable).",
    errno.EACCES: "You may not write there: fix the folder's permissions or choose another --output.",
    errno.EPERM: "You may not write there: fix the folder's permissions or choose another --output.",
}


def tmp_name(path):
    """The temporary sibling a process writes before renaming: per process, so never shared."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def fsync_file(path):
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def write_bytes_atomic(path, data):
    """Write a file whole or not at all; the temporary file is removed on any failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_atomic(path, text):
    """A text file, atomically (UTF-8)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_csv(path, frame):
    """A table as CSV, atomically (no index column)."""
    write_atomic(path, frame.to_csv(index=False))


def os_errno(exc):
    """The errno of an OSError, also when a library (h5py) only put it in the message."""
    if exc.errno:
        return exc.errno
    found = _ERRNO_IN_TEXT.search(str(exc))
    if found:
        return int(found.group(1))
    text = str(exc).lower()
    if "no space left" in text:
        return errno.ENOSPC
    if "read-only file system" in text:
        return errno.EROFS
    if "permission denied" in text:
        return errno.EACCES
    return None


def _existing_parent(path):
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_space(path):
    """Bytes free on the file system holding ``path`` (or None if it cannot be told)."""
    try:
        return shutil.disk_usage(_existing_parent(path)).free
    except OSError:
        return None


def human_bytes(n):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def storage_error(exc, doing, path=None):
    """A StorageError for an OSError met while ``doing`` something (e.g. 'fit writing stack.skops')."""
    path = path or exc.filename or "?"
    code = os_errno(exc)
    reason = os.strerror(code) if code else str(exc)
    summary = f"Cannot finish {doing}: {reason}: {path}"
    if code in (errno.ENOSPC, errno.EDQUOT):
        free = free_space(path)
        if free is not None:
            summary += f" ({human_bytes(free)} free there)"
    return StorageError(summary, hint=_HINTS.get(code, "Check the folder and the disk, then run again; "
                                                       "everything committed before is intact."))


@contextmanager
def os_errors_as_user_errors(doing, path=None):
    """Turn an OSError inside the block into a StorageError naming ``doing`` and the path."""
    try:
        yield
    except OSError as exc:
        raise storage_error(exc, doing, path) from None


def check_writable(folder, doing):
    """Fail now, not after hours of work, when ``folder`` cannot be written."""
    folder = Path(folder)
    with os_errors_as_user_errors(doing, folder):
        folder.mkdir(parents=True, exist_ok=True)
        probe = tmp_name(folder / ".write-probe")
        try:
            with open(probe, "wb") as fh:
                fh.write(b"ok")
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            probe.unlink(missing_ok=True)
