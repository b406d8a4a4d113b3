"""The one runner: every stage runs the same way (DESIGN.md, "The stage contract").

1. the study was validated when it was loaded (all sections, all registries, all problems at once);
2. lock the run folder; finish or drop what a killed process left;
3. check that every stage it depends on is committed and fresh, else name the stage to re-run;
4. an unchanged fingerprint with intact outputs does nothing (``force`` redoes it);
5. compute into a staging area, after checking that it can be written;
6. commit: the stage record last, the run record with it; OS failures become user errors.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipeline import __version__
from pipeline.catalog import Inputs
from pipeline.contract import StageContext
from pipeline.fingerprint import library_versions
from pipeline.freshness import Session
from pipeline.lock import run_lock
from pipeline.records import RunRecord, StageRecord
from pipeline.stages import RUN_ORDER, STAGES
from pipeline.storage import storage_error
from pipeline.transaction import STAGING, Staging, recover

log = logging.getLogger(__name__)


@dataclass
class StageOutcome:
    """What one stage did: ran (and committed) or found its cache valid; its committed record."""

    stage: str
    ran: bool
    record: StageRecord
    folder: Path

    @property
    def summary(self):
        return self.record.summary


def _utc():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _outputs_intact(folder, record):
    """The cache check: every listed output is there with its size (contents are checked on read)."""
    for rel, entry in record.outputs.items():
        try:
            if (folder / rel).stat().st_size != entry["bytes"]:
                return False
        except OSError:
            return False
    return True


def _run_record(session, stage, summary, fingerprint):
    study = session.study
    old = session.run_record
    stages = dict(old.stages) if old else {}
    stages[stage.name] = {"flags": list(study.flags), "fingerprint": fingerprint, "committed": _utc()}
    resolved = dict(old.resolved) if old else {}
    resolved.update(summary.get("resolved", {}))
    return RunRecord(study_file=str(Path(study.path).resolve()) if study.path else None,
                     study=study.to_dict(), stages=stages, resolved=resolved)


def _final_path(path, folder):
    """A staging path as the user will know it (its committed location)."""
    if not path:
        return path
    parts = Path(path).parts
    if STAGING in parts:
        i = parts.index(STAGING)
        return str(Path(*parts[:i], *parts[i + 2:]))
    return str(path)


def _run_locked(stage, session, force, show_progress, options):
    study = session.study
    session.check_upstream(stage)
    if stage.needs_manifest:
        session.manifest                        # every manifest problem before any work
    inputs = session.inputs_now(stage)
    fingerprint = session.fingerprint(stage, inputs)
    folder = study.run_dir / stage.folder
    previous = session.catalog.record(stage.name)
    # a record listing files the stage no longer declares (an older layout: pickled models) is redone
    if not force and previous is not None and previous.fingerprint == fingerprint \
            and _outputs_intact(folder, previous) and not session.catalog.undeclared(stage.name):
        log.info("%s: unchanged (fingerprint matches), nothing to do", stage.name)
        return StageOutcome(stage.name, False, previous, folder)
    staging = Staging(study.run_dir, stage, previous).open()
    inputs_view = Inputs(session.catalog, stage, trust_pickle=bool(options.get("trust_pickle")))
    ctx = StageContext(stage=stage, study=study, inputs=inputs_view, out=staging,
                       session=session, fingerprint=fingerprint, previous=previous, force=force,
                       show_progress=show_progress, options=dict(options),
                       optional=session.optional_status(stage), run_order=RUN_ORDER)
    started, clock = _utc(), time.perf_counter()
    try:
        summary = stage.compute(ctx) or {}
        record = StageRecord(stage=stage.name, version=stage.version, fingerprint=fingerprint, inputs=inputs,
                             outputs={}, summary=summary, versions=library_versions(),
                             timing={"started": started, "finished": _utc(),
                                     "seconds": round(time.perf_counter() - clock, 3)},
                             process={"pid": os.getpid(), "host": socket.gethostname()}, breastfuse=__version__)
        staging.commit(record, _run_record(session, stage, summary, fingerprint))
    except OSError as exc:
        staging.discard()
        raise storage_error(exc, f"{stage.name} (writing its results in {folder})",
                            _final_path(exc.filename, folder)) from None
    except BaseException:
        staging.discard()
        raise
    session.catalog.forget()
    for hook in ctx.after_commit:
        hook()
    session.hashes.save()
    return StageOutcome(stage.name, True, record, folder)


def run_stages(names, study, force=False, show_progress=True, wait=True, options=None, session=None,
               labelled=True):
    """Run stages in order under one lock; each is skipped when its cache is valid, so a second
    run redoes exactly what changed. ``options``: {stage: {option: value}} (no result depends on them)."""
    options = options or {}
    stages = [STAGES[n] for n in names]
    session = session or Session(study, labelled=labelled, check_images=any(s.needs_images for s in stages),
                                 check_split=labelled and any(s.needs_split for s in stages))
    if any(s.needs_manifest for s in stages):
        session.manifest                        # every manifest problem first; nothing is made before
    with run_lock(study.run_dir, "+".join(names), wait):
        recover(study.run_dir)
        session.catalog.forget()
        outcomes = [_run_locked(s, session, force, show_progress, options.get(s.name, {})) for s in stages]
    session.hashes.save()
    return outcomes


def run_stage(name, study, **kwargs):
    """One stage (see ``run_stages``); returns its StageOutcome."""
    return run_stages([name], study, **kwargs)[0]


def run_all(study, skip=(), **kwargs):
    """Every stage of a study in order (`run_pipeline.py run`, the demo, the reference results)."""
    return {o.stage: o for o in run_stages([n for n in RUN_ORDER if n not in skip], study, **kwargs)}
