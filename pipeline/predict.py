"""`predict`: new cases through a fitted run's own extractors and a saved model, to probabilities.

Everything comes from the run folder: the run record (the resolved study, the weights the run
really used), the committed models (only if fit is still up to date with its inputs) and the
committed embeddings as a cache. The new images are embedded by the extract stage in a run of
their own (``<run>/predict``), so their cache, lock and records work as everywhere else.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import validate
from pipeline.errors import ManifestError, StageInputError
from pipeline.freshness import Session
from pipeline.lock import run_lock
from pipeline.manifest import read_header
from pipeline.records import RUN_RECORD, read_run_record
from pipeline.runner import run_stage
from pipeline.stages import STAGES
from pipeline.storage import os_errors_as_user_errors, write_csv
from pipeline.transaction import recover

log = logging.getLogger(__name__)


def recorded_study(run_dir):
    """The study the run's last commit resolved (every default, weights as resolved)."""
    run_dir = Path(run_dir).resolve()
    record = read_run_record(run_dir / RUN_RECORD)
    if record is None or "fit" not in record.stages:
        raise StageInputError(f"{run_dir} has no fitted models (no run record of a fit in {run_dir / RUN_RECORD})",
                              hint="Run fit first, or pass the run folder that holds models/.")
    # the folder given is the run, wherever it was made: a run folder copied or shared elsewhere
    # reads its own models, not those at the path it was made at
    study = validate({**record.study, "output": str(run_dir)}, run_dir, source="study recorded in",
                     path=record.study_file)
    return study, record


def _new_cases_study(study, record, manifest_path, run_dir):
    """The run's study pointed at the new manifest, embedding with exactly the weights it used."""
    backbones = []
    for b in study.backbones:
        resolved = record.weights(b.name)
        weights = "random" if resolved.get("fallback") else b.own_weights
        backbones.append({"name": b.name, "weights": weights, "input_size": b.input_size})
    return study.with_overrides([(["manifest"], str(Path(manifest_path).resolve())),
                                 (["output"], str(run_dir / "predict")), (["extract", "backbones"], backbones),
                                 (["extract", "allow_random_fallback"], False)])


def _check_fit_is_current(study):
    """Refuse models that no longer match their inputs; a run whose training data is not here
    (a shared run folder) cannot be re-checked, which is said, not hidden."""
    if not Path(study.manifest_path).is_file():
        log.warning("predict: the run's training manifest %s is not here, so whether its models are up to "
                    "date cannot be re-checked; using them as committed", study.manifest_path)
        return
    Session(study, check_images=False).check_current(STAGES["fit"], user="predict")


def _check_columns(study, path):
    header = read_header(path)
    missing = [m.path_column for m in study.modalities.values() if m.path_column not in header]
    missing += [c for c in study.clinical if c not in header]
    if missing:
        raise ManifestError(f"Manifest {path} does not match the run: missing column(s) {', '.join(missing)}",
                            [f"column '{c}' is missing (the run was fitted with it)" for c in missing],
                            hint="Add the columns (leave cells empty where a modality or value is unknown).")


def run_predict(run_dir, manifest_path, out_path, model="stack", show_progress=True, wait=True,
                trust_pickle=False):
    """Write per-class probabilities, the predicted label and the modalities present per case
    (``trust_pickle``: load a model an older BreastFuse pickled, for a run the user made)."""
    from features.design import assemble_design  # noqa: PLC0415

    run_dir = Path(run_dir).resolve()
    study, record = recorded_study(run_dir)
    with run_lock(run_dir, "predict", wait):
        recover(run_dir)
        _check_fit_is_current(study)
        catalog = Session(study, check_images=False).catalog
        estimator, meta = catalog.model(model, trust_pickle=trust_pickle)
        new = _new_cases_study(study, record, manifest_path, run_dir)
        if Path(new.manifest_path).is_file():
            _check_columns(new, new.manifest_path)
        run_stage("extract", new, show_progress=show_progress, wait=wait, labelled=False,
                  options={"extract": {"cache_from": [run_dir]}})
        embedded = Session(new, labelled=False, check_images=False)
        manifest = embedded.manifest
        tables = {(m, b.name): embedded.catalog.read("extract:embeddings", modality=m, backbone=b.name)
                  for m in new.modalities for b in new.backbones}
    frame, _ = assemble_design(manifest.frame["case_id"], manifest.frame, tables, dict(new.clinical))
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
    for m in new.modalities:
        out[f"has:{m}"] = (frame[f"missing:{m}"].to_numpy() == 0).astype(int)
    out["model"] = model
    with os_errors_as_user_errors("predict (writing the predictions)", out_path):
        write_csv(out_path, out)
    return out
