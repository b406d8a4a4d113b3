"""The artifact catalog: the one place that knows where a run's files are and how they load.

Paths come from the stages' declarations (their folder and artifact patterns); a reader returns
only files listed in a committed stage record whose sha256 still matches (a file changed behind
the record's back is refused, naming the stage to re-run). Stages get an ``Inputs`` view limited to
the artifacts they declare, so no stage reads another's files by spelled-out names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from pipeline.design_store import read_design_files
from pipeline.errors import StageInputError
from pipeline.hashcache import HashCache
from pipeline.records import RECORD, RUN_RECORD, read_record, read_run_record
from pipeline.stages import STAGES


def _json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _predictions(path):
    return pd.read_csv(path, dtype={"case_id": str})


def _embeddings(path):
    from features.store import read_table  # noqa: PLC0415

    return read_table(path)


def _model(path):
    import joblib  # noqa: PLC0415

    return joblib.load(path)


def _occlusion(path):
    from features.occlusion import load_maps  # noqa: PLC0415

    return load_maps(path)


#: How each artifact loads ("stage:artifact" -> loader(path)); anything unnamed is read as text.
LOADERS = {
    "extract:embeddings": _embeddings,
    "extract:images": _json,
    "fuse:design_meta": _json,
    "fit:metrics": _json,
    "fit:cv_predictions": _predictions,
    "fit:holdout_predictions": _predictions,
    "fit:model": _model,
    "fit:model_info": _json,
    "fit:pca": _json,
    "explain:occlusion": _occlusion,
}


def _pattern_regex(pattern):
    parts = re.split(r"(\{\w+\})", pattern)
    rx = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{rx}$")


def stage_command(stage, study_file="<study.yaml>"):
    return f"run_pipeline.py {stage} -c {study_file}"


class Catalog:
    """A run folder's committed artifacts, read through their records."""

    def __init__(self, run_dir, hashes=None):
        self.run_dir = Path(run_dir)
        self.hashes = hashes if hashes is not None else HashCache(None)
        self._records = {}

    def folder(self, stage):
        return self.run_dir / STAGES[stage].folder

    def record(self, stage):
        """The committed record of ``stage`` (None when it never committed here)."""
        if stage not in self._records:
            self._records[stage] = read_record(self.folder(stage) / RECORD)
        return self._records[stage]

    def forget(self, stage=None):
        """Drop cached records (after a commit changed them)."""
        if stage is None:
            self._records.clear()
        else:
            self._records.pop(stage, None)

    def run_record(self):
        return read_run_record(self.run_dir / RUN_RECORD)

    def path(self, ref, **fields):
        """The committed location of an artifact ("fit:model", learner="stack"), checked or not."""
        stage, name = ref.split(":", 1)
        return self.folder(stage) / STAGES[stage].artifact(name).pattern.format(**fields)

    def listed(self, ref):
        """The field values of every committed file of an artifact (e.g. each saved learner)."""
        stage, name = ref.split(":", 1)
        record = self.record(stage)
        rx = _pattern_regex(STAGES[stage].artifact(name).pattern)
        found = [rx.match(rel) for rel in (record.outputs if record else {})]
        return [m.groupdict() for m in found if m]

    def has(self, ref, **fields):
        stage, _ = ref.split(":", 1)
        record = self.record(stage)
        rel = self.path(ref, **fields).relative_to(self.folder(stage)).as_posix()
        return record is not None and rel in record.outputs

    def verified(self, ref, **fields):
        """The path of a committed artifact whose content still matches its record."""
        stage, _ = ref.split(":", 1)
        record = self.record(stage)
        if record is None:
            raise StageInputError(f"No committed {stage} results in {self.run_dir}",
                                  hint=f"Run `{stage_command(stage)}` first (or `run`).")
        path = self.path(ref, **fields)
        rel = path.relative_to(self.folder(stage)).as_posix()
        entry = record.outputs.get(rel)
        if entry is None:
            raise StageInputError(f"{stage}'s committed results in {self.folder(stage)} have no {rel}",
                                  hint=f"Files it committed: {', '.join(sorted(record.outputs)) or 'none'}.")
        try:
            digest = self.hashes.sha256(path)
        except FileNotFoundError:
            raise StageInputError(f"{path} is missing, although {stage}'s record lists it (the run folder "
                                  f"was changed by hand)",
                                  hint=f"Run `{stage_command(stage)} --force` to make it again.") from None
        if digest != entry["sha256"]:
            raise StageInputError(f"{path} was changed after {stage} wrote it (its content no longer matches "
                                  f"the stage record)",
                                  hint=f"Run `{stage_command(stage)} --force` to make it again.")
        return path

    def read(self, ref, **fields):
        path = self.verified(ref, **fields)
        loader = LOADERS.get(ref)
        return loader(path) if loader else path.read_text(encoding="utf-8")

    def design(self):
        """The fused design (design.h5 + design.json), both checked against fuse's record."""
        return read_design_files(self.verified("fuse:design"), self.verified("fuse:design_meta"))

    def model(self, learner):
        """(fitted model, its info) of a saved learner; the error names the saved ones."""
        if not self.has("fit:model", learner=learner):
            saved = sorted(d["learner"] for d in self.listed("fit:model"))
            raise StageInputError(f"No saved model '{learner}' in {self.folder('fit')}",
                                  hint=f"Saved models: {', '.join(saved) or 'none'}.")
        return self.read("fit:model", learner=learner), self.read("fit:model_info", learner=learner)


class Inputs:
    """A stage's view of the catalog: only the artifacts its declaration reads."""

    def __init__(self, catalog, stage):
        self.catalog = catalog
        self.stage = stage
        own = {f"{stage.name}:{a.name}" for a in stage.writes}     # its previous result, as a cache
        self.allowed = set(stage.reads) | own
        self.stages = {r.split(":", 1)[0] for r in self.allowed}

    def _check(self, ref):
        if ref not in self.allowed:
            raise AssertionError(f"stage '{self.stage.name}' reads {ref} without declaring it in its reads")

    def read(self, ref, **fields):
        self._check(ref)
        return self.catalog.read(ref, **fields)

    def has(self, ref, **fields):
        self._check(ref)
        return self.catalog.has(ref, **fields)

    def listed(self, ref):
        self._check(ref)
        return self.catalog.listed(ref)

    def elsewhere(self, run_dir):
        """The same view over another run folder (extract reuses other runs' embeddings as a cache)."""
        return Inputs(Catalog(run_dir), self.stage)

    def record(self, stage):
        if stage not in self.stages:
            raise AssertionError(f"stage '{self.stage.name}' reads {stage}'s record without declaring it")
        return self.catalog.record(stage)

    def design(self):
        self._check("fuse:design")
        self._check("fuse:design_meta")
        return self.catalog.design()

    def model(self, learner):
        self._check("fit:model")
        self._check("fit:model_info")
        return self.catalog.model(learner)
