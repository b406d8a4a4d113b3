"""Content hashes of files with a stat fast path that never misses a change.

Every freshness check needs the sha256 of the manifest, of every image and of every artifact; a
20k-image study cannot re-read them all at each command. An entry is reused only when size, mtime,
ctime and inode are all unchanged (ctime cannot be set back by users: any write moves it) and the
entry was taken more than ``RACY_SECONDS`` after the file's last change (git's "racy" rule: a file
written again within the clock's granularity would otherwise look unchanged).
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from features.hashing import file_sha256
from pipeline.storage import write_atomic

log = logging.getLogger(__name__)
RACY_SECONDS = 2.0


def _stat_key(st):
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class HashCache:
    """sha256 per absolute path, persisted in the run folder (``save`` writes it back)."""

    def __init__(self, path=None):
        self.path = Path(path) if path is not None else None
        self.entries = {}
        self.dirty = False
        if self.path is not None and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.debug("ignoring unreadable hash cache %s", self.path)

    def _cached(self, path, st):
        entry = self.entries.get(path)
        if entry is None or entry[:4] != _stat_key(st):
            return None
        changed = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9
        return entry[5] if entry[4] - changed > RACY_SECONDS else None

    def sha256(self, path):
        """The file's sha256 (raises OSError when it cannot be read)."""
        path = str(Path(path).resolve())
        st = os.stat(path)
        found = self._cached(path, st)
        if found is not None:
            return found
        checked = time.time()
        digest = file_sha256(path)
        self.entries[path] = [*_stat_key(st), checked, digest]
        self.dirty = True
        return digest

    def many(self, paths, workers=4):
        """{path: sha256} for distinct paths, hashed in parallel where not cached (IO-bound)."""
        unique = sorted({str(Path(p).resolve()) for p in paths})
        todo = [p for p in unique if self._cached(p, os.stat(p)) is None]
        if todo:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                done = list(pool.map(self._fresh, todo))
            for path, entry in zip(todo, done):
                self.entries[path] = entry
            self.dirty = True
        return {p: self.entries[p][5] for p in unique}

    @staticmethod
    def _fresh(path):
        st = os.stat(path)
        checked = time.time()
        return [*_stat_key(st), checked, file_sha256(path)]

    def save(self):
        """Write the cache back (best effort: a read-only folder just means no fast path next time)."""
        if self.path is None or not self.dirty:
            return
        try:
            write_atomic(self.path, json.dumps(self.entries, separators=(",", ":")))
            self.dirty = False
        except OSError as exc:
            log.debug("hash cache not saved (%s)", exc)
