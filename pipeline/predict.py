"""`predict`: new cases through a fitted run's own extractors and a saved model, to probabilities.

Everything comes from the run folder: the run record (the resolved study, the weights the run
really used), the committed models (only if fit is still up to date with its inputs) and the
committed embeddings as a cache. The new images are embedded by the extract stage in a run of
their own (``<run>/predict``), so their cache, lock and records work as everywhere else.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.cohort import embed_cohort, model_rows, probabilities_frame
from pipeline.config import validate
from pipeline.errors import StageInputError
from pipeline.freshness import Session
from pipeline.lock import run_lock
from pipeline.records import RUN_RECORD, read_run_record
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


def _check_fit_is_current(study):
    """Refuse models that no longer match their inputs; a run whose training data is not here
    (a shared run folder) cannot be re-checked, which is said, not hidden."""
    if not Path(study.manifest_path).is_file():
        log.warning("predict: the run's training manifest %s is not here, so whether its models are up to "
                    "date cannot be re-checked; using them as committed", study.manifest_path)
        return
    Session(study, check_images=False).check_current(STAGES["fit"], user="predict")


def run_predict(run_dir, manifest_path, out_path, model="stack", show_progress=True, wait=True,
                trust_pickle=False):
    """Write per-class probabilities, the predicted label and the modalities present per case
    (``trust_pickle``: load a model an older BreastFuse pickled, for a run the user made)."""
    run_dir = Path(run_dir).resolve()
    study, record = recorded_study(run_dir)
    with run_lock(run_dir, "predict", wait):
        recover(run_dir)
        _check_fit_is_current(study)
        catalog = Session(study, check_images=False).catalog
        estimator, meta = catalog.model(model, trust_pickle=trust_pickle)
        cohort = embed_cohort(study, record, manifest_path, run_dir / "predict", [run_dir],
                              show_progress=show_progress, wait=wait)
    frame = cohort.frame
    proba = estimator.predict_proba(model_rows(frame, meta, model))
    out = probabilities_frame(frame.index, proba, list(meta["classes"]))
    for m in (b for mod in cohort.study.modalities.values() for b in mod.block_modalities()):
        out[f"has:{m}"] = (frame[f"missing:{m}"].to_numpy() == 0).astype(int)
    out["model"] = model
    with os_errors_as_user_errors("predict (writing the predictions)", out_path):
        write_csv(out_path, out)
    return out
