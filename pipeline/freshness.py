"""Fingerprints now, against the records: is what a stage would read still what its upstream made?

A stage's fingerprint is a hash of its name, version, the config it reads (result-neutral settings
left out), the fingerprints of inputs from outside the run (manifest content, image content) and
its upstream stages' record fingerprints (Hugging Face ``datasets``' transform@version, DVC's
lock). Before a stage runs, each stage it depends on is fingerprinted *now* and compared with its
record; a difference is explained in the user's terms (which setting, how many rows, which image).
"""

from __future__ import annotations

import logging
from functools import cached_property

from features.hashing import hash_json
from pipeline.catalog import Catalog, stage_command
from pipeline.errors import StageInputError, StaleError
from pipeline.hashcache import HashCache
from pipeline.stages import STAGES

log = logging.getLogger(__name__)
HASH_CACHE = ".hashes.json"


class Session:
    """One command's view of a run: the study, its manifest (loaded once), the hash cache, the
    catalog, and fingerprints of external inputs computed once."""

    def __init__(self, study, labelled=True, check_images=True, missing_inputs="error", check_split=False):
        self.study = study
        self.labelled = labelled
        self.check_images = check_images
        self.check_split = check_split             # the command will fuse: every class must be splittable
        self.missing_inputs = missing_inputs       # "warn": predict on a run whose inputs moved away
        self.hashes = HashCache(study.run_dir / HASH_CACHE)
        self.catalog = Catalog(study.run_dir, self.hashes)
        self._external = {}

    @cached_property
    def manifest(self):
        from pipeline.manifest import load_manifest  # noqa: PLC0415

        return load_manifest(self.study, check_files=self.check_images, labelled=self.labelled,
                             check_split=self.check_split)

    @property
    def run_record(self):
        return self.catalog.run_record()

    def external(self, stage):
        if stage.name not in self._external:
            self._external[stage.name] = stage.external(self) if stage.external else {}
        return self._external[stage.name]

    def inputs_now(self, stage):
        """What ``stage`` would be computed from now: its config, external inputs, upstream records."""
        upstream = {}
        for name in stage.upstream:
            record = self.catalog.record(name)
            upstream[name] = record.fingerprint if record else None
        for name, status in self.optional_status(stage).items():
            upstream[name] = self.catalog.record(name).fingerprint if status == "ok" else status
        return {"config": self.study.config_of(stage.config), "external": self.external(stage),
                "upstream": upstream}

    def fingerprint(self, stage, inputs=None):
        inputs = self.inputs_now(stage) if inputs is None else inputs
        return hash_json({"stage": stage.name, "version": stage.version, "inputs": inputs})

    def optional_status(self, stage):
        """Optional upstream -> "ok" (committed and fresh), "stale" or "missing"."""
        out = {}
        for name in stage.optional:
            record = self.catalog.record(name)
            if record is None:
                out[name] = "missing"
                continue
            try:
                self.check_upstream(STAGES[name])
                fresh = self.fingerprint(STAGES[name]) == record.fingerprint
            except StageInputError:
                fresh = False
            out[name] = "ok" if fresh else "stale"
        return out

    def check_upstream(self, stage):
        """Raise (naming the stage to re-run) unless every stage ``stage`` depends on is committed
        and still matches its inputs, checked from the first stage of the chain down."""
        self._check(stage, upstream_chain(stage), f"for {stage.name}")

    def check_current(self, stage, user="it"):
        """Like ``check_upstream``, and the stage's own committed result must match its inputs too
        (``predict`` and the evaluation of a fitted run refuse an out-of-date fit)."""
        self._check(stage, upstream_chain(stage) + [stage.name], f"for {user}")

    def _check(self, stage, chain, purpose):
        missing = [name for name in chain if self.catalog.record(name) is None]
        if missing:
            raise _missing_error(stage, missing, self.study)
        stale = []
        for name in chain:
            upstream, record = STAGES[name], self.catalog.record(name)
            now = self.inputs_now(upstream)
            if self.fingerprint(upstream, now) != record.fingerprint:
                stale.append((name, why_stale(upstream, record, now, self)))
        if stale:
            names = [name for name, _ in stale]
            verb = "is" if len(names) == 1 else "are"
            raise StaleError(f"{' and '.join(names)} {verb} out of date {purpose}:",
                             [f"{name}: " + "; ".join(lines) for name, lines in stale],
                             hint=rerun_hint(names[0], self.study))


def upstream_chain(stage):
    """Every stage ``stage`` depends on, directly or not, in registry (run) order."""
    seen, todo = set(), list(stage.upstream)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(STAGES[name].upstream)
    return [name for name in STAGES if name in seen]


def _study_file(study):
    return str(study.path) if study.path else "<study.yaml>"


def rerun_hint(name, study):
    return (f"Run `{stage_command(name, _study_file(study))}` and the stages after it, or "
            f"`run_pipeline.py run -c {_study_file(study)}`, which re-runs exactly the stages that are "
            f"out of date.")


def _missing_error(stage, missing, study):
    direct = [n for n in (*stage.upstream, stage.name) if n in missing] or missing
    nouns = {name: STAGES[name].noun for name in missing}
    return StageInputError(
        f"No {nouns[direct[-1]]} in {study.run_dir}: {stage.name} needs what "
        f"{' and '.join(missing)} make{'s' if len(missing) == 1 else ''}, and "
        f"{'it has' if len(missing) == 1 else 'they have'} not run there.",
        [f"{name}: `{stage_command(name, _study_file(study))}`" for name in missing],
        hint=f"Run them in that order, or `run_pipeline.py run -c {_study_file(study)}`.")


def _flatten(node, prefix=""):
    if isinstance(node, dict) and node:
        out = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: node}


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def why_stale(stage, record, now, session):
    """Lines saying what differs between a stage's record and its inputs now."""
    lines = []
    if record.version != stage.version:
        lines.append(f"it was made by version {record.version} of the {stage.name} stage, now {stage.version}")
    old_cfg, new_cfg = _flatten(record.inputs.get("config", {})), _flatten(now["config"])
    changed = [k for k in sorted(set(old_cfg) | set(new_cfg)) if old_cfg.get(k) != new_cfg.get(k)]
    if changed:
        shown = [f"{k} was {_short(old_cfg.get(k))}, now {_short(new_cfg.get(k))}" for k in changed[:5]]
        more = f" (and {len(changed) - 5} more)" if len(changed) > 5 else ""
        lines.append("it was made with other settings: " + ", ".join(shown) + more)
    old_ext, new_ext = record.inputs.get("external", {}), now["external"]
    if old_ext != new_ext:
        if stage.explain_external:
            lines += stage.explain_external(old_ext, new_ext, session)
        else:
            lines.append("its inputs outside the run folder changed")
    for name, fingerprint in now["upstream"].items():
        if record.inputs.get("upstream", {}).get(name) != fingerprint:
            lines.append(f"it was made from an earlier {name} result ({name} ran again since)")
    return lines or ["its fingerprint differs from its record"]
