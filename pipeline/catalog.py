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


def _table(path):
    """A CSV table that may be empty (a cohort without subgroups)."""
    try:
        return pd.read_csv(path, dtype={"case_id": str, "y_true": str, "subgroup": str})
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _embeddings(path):
    from features.store import read_table  # noqa: PLC0415

    return read_table(path)


def _model_error(exc):
    """A model file's refusal (untrusted types, damage) as the user's error, naming what to redo."""
    if exc.untrusted:
        return StageInputError(
            f"{exc.path} holds types BreastFuse does not load, so nothing in it was run:", exc.untrusted,
            hint="A model file may hold only BreastFuse's own estimators and scikit-learn, imbalanced-learn, "
                 "XGBoost and numpy objects; this one is not what fit saved. Run "
                 f"`{stage_command('fit')} --force` to make it again.")
    return StageInputError(f"{exc.path} cannot be loaded as a model: {exc.reason}",
                           hint=f"Run `{stage_command('fit')} --force` to make it again.")


def _loaded(load, path):
    from models.persistence import ModelFileError  # noqa: PLC0415

    try:
        return load(path)
    except ModelFileError as exc:
        raise _model_error(exc) from None


def _model(path):
    from models.persistence import load_model  # noqa: PLC0415

    return _loaded(load_model, path)


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
    "evaluate:evaluation": _json,
    **{f"evaluate:{name}": _table for name in ("predictions", "metrics_table", "operating_points", "decision_curve",
                                                "subgroups", "excluded", "missing_modality")},
}
#: fit's model files before they were skops files: pickles, loaded only with ``--trust-pickle``.
PICKLED_MODEL = "{learner}.joblib"


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

    def undeclared(self, stage):
        """Outputs ``stage``'s record lists that match none of its artifacts as declared now (a
        record of an older layout, e.g. pickled models: not a valid cache)."""
        record = self.record(stage)
        patterns = [_pattern_regex(a.pattern) for a in STAGES[stage].writes]
        return sorted(rel for rel in (record.outputs if record else {}) if not any(p.match(rel) for p in patterns))

    def verified(self, ref, **fields):
        """The path of a committed artifact whose content still matches its record."""
        stage, _ = ref.split(":", 1)
        return self._verified(stage, self.path(ref, **fields))

    def _verified(self, stage, path):
        record = self.record(stage)
        if record is None:
            raise StageInputError(f"No committed {stage} results in {self.run_dir}",
                                  hint=f"Run `{stage_command(stage)}` first (or `run`).")
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

    def _pickled(self, learner):
        """The path of an older BreastFuse's pickled model of ``learner`` that fit's record lists."""
        record, rel = self.record("fit"), PICKLED_MODEL.format(learner=learner)
        return self.folder("fit") / rel if record is not None and rel in record.outputs else None

    def has_model(self, learner):
        return self.has("fit:model", learner=learner) or self._pickled(learner) is not None

    def saved_models(self):
        """The learners fit saved, older pickled ones included."""
        record = self.record("fit")
        patterns = [_pattern_regex(p) for p in (STAGES["fit"].artifact("model").pattern, PICKLED_MODEL)]
        found = [p.match(rel) for p in patterns for rel in (record.outputs if record else {})]
        return sorted({m["learner"] for m in found if m})

    def model(self, learner, trust_pickle=False):
        """(fitted model, its info) of a saved learner; the error names the saved ones. A model an
        older BreastFuse pickled loads only with ``trust_pickle`` (a pickle runs what it holds)."""
        if self.has("fit:model", learner=learner):
            model = self.read("fit:model", learner=learner)
        elif (pickled := self._pickled(learner)) is not None:
            model = self._read_pickle(pickled, trust_pickle)
        else:
            raise StageInputError(f"No saved model '{learner}' in {self.folder('fit')}",
                                  hint=f"Saved models: {', '.join(self.saved_models()) or 'none'}.")
        return model, self.read("fit:model_info", learner=learner)

    def _read_pickle(self, path, trust_pickle):
        if not trust_pickle:
            raise StageInputError(
                f"{path} was made by an older BreastFuse: re-run fit, or `--trust-pickle` if you made this "
                f"file yourself",
                hint="It is a pickle, which runs whatever it holds as it loads, so it was not loaded. "
                     f"`{stage_command('fit')}` saves the models again as files that hold only known types "
                     f"(same numbers).")
        from models.persistence import load_pickle  # noqa: PLC0415

        return _loaded(load_pickle, self._verified("fit", path))


class Inputs:
    """A stage's view of the catalog: only the artifacts its declaration reads."""

    def __init__(self, catalog, stage, trust_pickle=False):
        self.catalog = catalog
        self.stage = stage
        self.trust_pickle = trust_pickle           # a runtime option: load an older run's pickled models
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
        return Inputs(Catalog(run_dir), self.stage, self.trust_pickle)

    def record(self, stage):
        if stage not in self.stages:
            raise AssertionError(f"stage '{self.stage.name}' reads {stage}'s record without declaring it")
        return self.catalog.record(stage)

    def design(self):
        self._check("fuse:design")
        self._check("fuse:design_meta")
        return self.catalog.design()

    def has_model(self, learner):
        self._check("fit:model")
        return self.catalog.has_model(learner)

    def model(self, learner):
        self._check("fit:model")
        self._check("fit:model_info")
        return self.catalog.model(learner, self.trust_pickle)
