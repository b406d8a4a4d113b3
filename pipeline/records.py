"""Stage records and the run record: the only files that say what a run folder holds.

A stage record (``<run>/<folder>/stage.json``, DVC's ``dvc.lock`` per stage) is written last by a
commit: the stage's fingerprint and the inputs it was computed from, every output with its sha256,
versions, timings and a small summary. A file its record does not list is not an output.

The run record (``<run>/run.json``) is the resolved study (every default filled, weights as
resolved, a random-weights fallback included) and, per stage, the command-line flags its last
commit ran with. It is written by the first stage of a run and updated by every commit, in the same
transaction, so later stages, ``predict`` and the report's reproduce commands read it instead of
rebuilding a study from attributes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

RECORD = "stage.json"
RUN_RECORD = "run.json"


def _json(obj):
    return json.dumps(obj, indent=1, sort_keys=True, default=jsonable)


def jsonable(o):
    """``json.dumps(default=...)`` for the numpy values and paths that artifacts carry."""
    import numpy as np  # noqa: PLC0415  (records are mostly written without numpy values)

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-able: {type(o).__name__}")


class _Json:
    def to_json(self):
        return _json(asdict(self))

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class StageRecord(_Json):
    stage: str
    version: int
    fingerprint: str
    inputs: dict                   # {"config": ..., "external": ..., "upstream": {stage: fingerprint}}
    outputs: dict                  # relative path -> {"sha256", "bytes"}
    summary: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)   # started, finished (UTC ISO), seconds
    process: dict = field(default_factory=dict)  # pid, host
    breastfuse: str = ""


def _read(cls, path):
    """A record, or None when there is none or it is unreadable (never half-read: records are only
    ever renamed into place)."""
    try:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None


def read_record(path):
    return _read(StageRecord, path)


@dataclass
class RunRecord(_Json):
    study_file: str | None
    study: dict                    # the resolved study (Study.to_dict())
    stages: dict = field(default_factory=dict)    # stage -> {"flags": [...], "fingerprint", "committed"}
    resolved: dict = field(default_factory=dict)  # {"weights": {backbone: {...}}}

    def flags(self, stage, default=()):
        entry = self.stages.get(stage)
        return list(entry["flags"]) if entry else list(default)

    def weights(self, backbone):
        """How the run's embeddings of ``backbone`` were really made ({} if unknown)."""
        return dict(self.resolved.get("weights", {}).get(backbone, {}))

    def weights_choice(self, backbone):
        """The resolved weights extract used, to embed new images exactly as the run did."""
        from features.backbones import WeightsChoice  # noqa: PLC0415

        w = self.weights(backbone)
        if not w:
            raise KeyError(f"the run record has no resolved weights for backbone '{backbone}'")
        return WeightsChoice(w["kind"], w["identity"], Path(w["path"]) if w.get("path") else None, w.get("seed"))


def read_run_record(path):
    return _read(RunRecord, path)
