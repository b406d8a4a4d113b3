"""The stage contract: what a stage declares, and the context the runner hands its computation.

A stage module declares one ``Stage``: its name, a version bumped when its meaning changes, the
config it reads, the artifacts it reads (which makes the stages it depends on) and writes, its own
settings section, its command-line flags, and one ``compute(ctx)``. Everything else (validation,
the lock, freshness of what it reads, its cache, staging, the commit of its record) is the runner's
(``pipeline.runner``), the same for every stage. Stages never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Artifact:
    """One kind of file a stage writes: a name readers ask for, and its path pattern inside the
    stage's folder (fields in braces: ``{learner}.skops``)."""

    name: str
    pattern: str
    doc: str = ""


@dataclass(frozen=True)
class Flag:
    """A command-line flag that is shorthand for one study key (``--n-jobs 4`` = ``--set fit.n_jobs=4``)."""

    option: str
    key: str
    help: str
    type: Callable | None = None
    action: str | None = None        # e.g. "store_true": the flag sets ``value``
    value: object = None
    metavar: str | None = None


@dataclass(frozen=True)
class Stage:
    """A declared stage. ``reads`` names artifacts (``"fuse:design"``); ``optional`` stages are read
    when present and fresh (the report shows explain's maps if they match the run)."""

    name: str
    version: int
    folder: str
    summary: str                          # one line for --help
    noun: str                             # what it makes, for messages ("fused design")
    description: str                      # the stage's --help text
    config: tuple                         # top-level keys and sections it reads (fingerprinted)
    reads: tuple = ()                     # "stage:artifact" it reads
    writes: tuple = ()                    # Artifact declarations
    compute: Callable | None = None       # compute(ctx) -> summary dict (JSON-able)
    external: Callable | None = None      # external(session) -> fingerprints of inputs from outside the run
    explain_external: Callable | None = None  # (old, new, session) -> lines saying what changed outside
    settings: type | None = None          # the stage's own section (a frozen settings dataclass)
    flags: tuple = ()                     # Flag declarations for its command
    optional: tuple = ()                  # stages read only when present and fresh
    needs_manifest: bool = False          # compute reads the manifest (checked before any work)
    needs_images: bool = False            # ... and the image files it names
    needs_split: bool = False             # ... and splits it by patient (class sizes checked before any work)
    message: Callable | None = None       # message(outcome) -> the line the command prints

    @property
    def upstream(self):
        """The stages whose committed artifacts it reads, in the order declared."""
        names = [r.split(":", 1)[0] for r in self.reads]
        return tuple(dict.fromkeys(n for n in names if n not in self.optional and n != self.name))

    def artifact(self, name):
        for a in self.writes:
            if a.name == name:
                return a
        raise KeyError(f"stage '{self.name}' declares no artifact '{name}'")


@dataclass
class StageContext:
    """What ``compute`` receives: the study, verified readers of what it declared, a writer into
    its staging area, and the run's facts. It never sees a path it did not declare."""

    stage: Stage
    study: object
    inputs: object            # pipeline.catalog.Inputs: reads limited to stage.reads
    out: object               # pipeline.transaction.Staging: writes limited to stage.writes
    session: object           # pipeline.freshness.Session: manifest, hashes, run record
    fingerprint: str
    previous: object = None   # the stage's own last committed record (or None)
    force: bool = False
    show_progress: bool = True
    options: dict = field(default_factory=dict)   # runtime options that change no result
    optional: dict = field(default_factory=dict)  # optional upstream -> "ok" | "stale" | "missing"
    run_order: tuple = ()     # every stage of a run, in order (the report's reproduce commands)
    after_commit: list = field(default_factory=list)  # callables run once the record is committed

    @property
    def manifest(self):
        return self.session.manifest

    @property
    def run_record(self):
        return self.session.run_record
