"""The `predict` stage: new cases through the run's own extractor settings and saved models.

Reads: <run>/models/study.json, <run>/models/<learner>.joblib (+ .json), <run>/features (as a cache),
       a new manifest and its images.
Writes: the predictions CSV, and <run>/predict/features (embeddings of the new images).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from features.design import assemble_design
from features.store import read_table
from pipeline import artifacts
from pipeline.config import validate
from pipeline.errors import ManifestError, StageInputError
from pipeline.manifest import load_manifest
from pipeline.stages.extract import run_extract

log = logging.getLogger(__name__)


def _run_study(run_dir, manifest_path):
    """The run's study, pointed at the new manifest, with the weights the run really used."""
    return recorded_study(run_dir, Path(manifest_path).resolve(), Path(run_dir).resolve() / "predict")


def recorded_study(run_dir, manifest_path=None, output=None):
    """The study fit recorded, with the weights the run really used (a fallback to seeded random
    weights included), optionally pointed at another manifest and output folder."""
    record = artifacts.study_record(run_dir)
    if not record.is_file():
        raise StageInputError(f"{run_dir} has no fitted models (missing {record})",
                              hint="Run fit first, or pass the run folder that holds models/.")
    raw = json.loads(record.read_text(encoding="utf-8"))
    if manifest_path is not None:
        raw["manifest"] = str(manifest_path)
    raw["output"] = str(output if output is not None else Path(run_dir).resolve())
    backbones = []
    for entry in raw["extract"]["backbones"]:
        entry = dict(entry)
        used = [read_table(artifacts.features_file(run_dir, m, entry["name"])) for m in raw["modalities"]]
        if any(t is not None and t.attrs.get("weights_fallback") for t in used):
            entry["weights"] = "random"  # the run fell back: new cases must match it
        backbones.append(entry)
    raw["extract"] = {**raw["extract"], "backbones": backbones, "allow_random_fallback": False}
    return validate(raw, Path.cwd(), source="study recorded in", path=record)


def _check_columns(study, frame, path):
    missing = [m.path_column for m in study.modalities.values() if m.path_column not in frame.columns]
    missing += [c for c in study.clinical if c not in frame.columns]
    if missing:
        raise ManifestError(f"Manifest {path} does not match the run: missing column(s) {', '.join(missing)}",
                            [f"column '{c}' is missing (the run was fitted with it)" for c in missing],
                            hint="Add the columns (leave cells empty where a modality or value is unknown).")


def _load_model(run_dir, name):
    path = artifacts.model_file(run_dir, name)
    if not path.is_file():
        found = sorted(p.stem for p in artifacts.models_dir(run_dir).glob("*.joblib"))
        raise StageInputError(f"No saved model '{name}' in {artifacts.models_dir(run_dir)}",
                              hint=f"Saved models: {', '.join(found) or 'none'}.")
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return joblib.load(path), meta


def run_predict(run_dir, manifest_path, out_path, model="stack", show_progress=True):
    """Write per-class probabilities, the predicted label and the modalities present per case."""
    run_dir = Path(run_dir).resolve()
    study = _run_study(run_dir, manifest_path)
    estimator, meta = _load_model(run_dir, model)
    if Path(study.manifest_path).is_file():
        header = pd.read_csv(study.manifest_path, nrows=0).columns.str.strip()
        _check_columns(study, pd.DataFrame(columns=header), study.manifest_path)
    manifest = load_manifest(study, labelled=False)
    run_extract(study, manifest, show_progress=show_progress, cache_dirs=[run_dir])
    tables = {(m, b.name): read_table(artifacts.features_file(study.run_dir, m, b.name))
              for m in study.modalities for b in study.backbones}
    frame, layout = assemble_design(manifest.frame["case_id"], manifest.frame, tables, study.clinical)
    columns = meta["columns"]
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise StageInputError(f"The new embeddings do not match model '{model}': {len(absent)} columns absent "
                              f"(e.g. {absent[:3]})", hint="Were the run's backbones or weights changed?")
    proba = estimator.predict_proba(frame[columns])
    classes = list(meta["classes"])
    out = pd.DataFrame({"case_id": frame.index})
    for j, c in enumerate(classes):
        out[f"proba:{c}"] = proba[:, j]
    out["predicted"] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    for m in study.modalities:
        out[f"has:{m}"] = (frame[f"missing:{m}"].to_numpy() == 0).astype(int)
    out["model"] = model
    artifacts.write_csv(out_path, out)
    return out
