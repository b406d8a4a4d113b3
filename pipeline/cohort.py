"""New cases through a fitted run's own extractors: the shared path of `predict` and `evaluate`.

A cohort is a manifest of cases the run never saw. Its images are embedded by the extract stage in a
run folder of its own (``<run>/predict``, ``<run>/cohorts/<name>``) with the weights the run really
used and the run's embeddings as a cache, so its lock, records and cache work as everywhere else;
then its design rows are assembled exactly as fuse assembles them (NaN + indicator for a modality a
case lacks), so the saved pipelines impute them as they were fitted to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import ManifestError, StageInputError
from pipeline.manifest import read_header

log = logging.getLogger(__name__)


def cohort_study(study, record, manifest_path, out_dir):
    """The run's study pointed at another manifest, embedding with exactly the weights it used."""
    backbones = []
    for b in study.backbones:
        resolved = record.weights(b.name)
        weights = "random" if resolved.get("fallback") else b.own_weights
        backbones.append({"name": b.name, "weights": weights, "input_size": b.input_size,
                          **({"params": b.params} if getattr(b, "params", None) else {})})
    return study.with_overrides([(["manifest"], str(Path(manifest_path).resolve())),
                                 (["output"], str(Path(out_dir).resolve())), (["extract", "backbones"], backbones),
                                 (["extract", "allow_random_fallback"], False)])


def check_columns(study, path):
    """The columns the run was fitted with are all there (cells may be empty)."""
    header = read_header(path)
    from pipeline.manifest.roi import roi_columns  # noqa: PLC0415

    missing = [c for m in study.modalities.values() for src in m.sources
               for c in (src.path_column, *roi_columns(src.roi)) if c not in header]
    missing += [c for c in study.clinical if c not in header]
    if missing:
        raise ManifestError(f"Manifest {path} does not match the run: missing column(s) {', '.join(missing)}",
                            [f"column '{c}' is missing (the run was fitted with it)" for c in missing],
                            hint="Add the columns (leave cells empty where a modality or value is unknown).")


@dataclass
class Cohort:
    """A cohort embedded and assembled: its checked manifest and its design rows (index case_id)."""

    manifest: object
    frame: pd.DataFrame
    study: object
    notes: list = field(default_factory=list)     # image notes of its extract (blank images allowed, ...)


def embed_cohort(study, record, manifest_path, out_dir, cache_from, show_progress=True, wait=True):
    """Embed a cohort's images with the run's extractors (cached) and assemble its design rows."""
    from features.design import assemble_design  # noqa: PLC0415
    from pipeline.freshness import Session  # noqa: PLC0415
    from pipeline.runner import run_stage  # noqa: PLC0415

    new = cohort_study(study, record, manifest_path, out_dir)
    if Path(new.manifest_path).is_file():
        check_columns(new, new.manifest_path)
    outcome = run_stage("extract", new, show_progress=show_progress, wait=wait, labelled=False,
                        options={"extract": {"cache_from": [Path(p) for p in cache_from]}})
    embedded = Session(new, labelled=False, check_images=False)
    manifest = embedded.manifest
    from pipeline.modalities import design_tables  # noqa: PLC0415

    tables = design_tables(new.modalities, {
        (m, b.name): embedded.catalog.read("extract:embeddings", modality=m, backbone=b.name)
        for m in new.modalities for b in new.backbones})
    frame, _ = assemble_design(manifest.frame["case_id"], manifest.frame, tables, dict(new.clinical))
    return Cohort(manifest=manifest, frame=frame, study=new, notes=list(outcome.summary.get("notes", [])))


def model_rows(frame, info, model):
    """The design columns a saved model was fitted on (``info``: its <learner>.json), or an error
    saying the embeddings differ. A block no case of the cohort has (a manifest without any
    ultrasound) has no columns to read: it is all missing, as its indicator says."""
    layout, empty = info["layout"], []
    for block, columns in layout.get("blocks", {}).items():
        indicator = layout.get("block_indicators", {}).get(block)
        absent = [c for c in columns if c not in frame.columns]
        if absent and indicator in frame.columns and (frame[indicator] == 1).all():
            empty += absent
    if empty:
        frame = pd.concat([frame, pd.DataFrame(np.nan, index=frame.index, columns=empty)], axis=1)
    absent = [c for c in info["columns"] if c not in frame.columns]
    if absent:
        raise StageInputError(f"The new embeddings do not match model '{model}': {len(absent)} columns absent "
                              f"(e.g. {absent[:3]})", hint="Were the run's backbones or weights changed?")
    return frame[info["columns"]]


def probabilities_frame(case_ids, proba, classes):
    """case_id, one proba:<class> column per class and the predicted (most probable) class."""
    out = pd.DataFrame({"case_id": list(case_ids)})
    for j, c in enumerate(classes):
        out[f"proba:{c}"] = proba[:, j]
    out["predicted"] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    return out


def cohort_fingerprint(session, manifest_path):
    """What a cohort's results are made from outside the run: its manifest and image/mask files."""
    from features.hashing import hash_json  # noqa: PLC0415
    from pipeline.manifest.reading import read_cells  # noqa: PLC0415

    path = Path(manifest_path)
    if not path.is_file():
        return {"manifest": None}
    frame, _, _ = read_cells(path)
    columns = [c for m in session.study.modalities.values() for src in m.sources
               for c in (src.path_column, src.mask_column) if c and c in frame.columns]
    files = sorted({str((path.parent / cell).resolve()) for c in columns for cell in frame[c] if cell})
    present = [f for f in files if Path(f).is_file()]
    found = session.hashes.many(present) if present else {}
    return {"manifest": session.hashes.sha256(path), "rows": int(len(frame)),
            "images": hash_json([[f, found.get(f)] for f in files])}


def cohort_labels(study, manifest, classes):
    """The cohort's labels as the run reads its own (``label.normalise``, ``label.map``/``drop``):
    (labels or None when the cohort has none, [(case, reason)] of the cases left out)."""
    from pipeline.manifest import effective_labels  # noqa: PLC0415
    from pipeline.manifest.spelling import label_form  # noqa: PLC0415

    column = study.label_column
    frame = manifest.frame
    if column not in frame.columns or (frame[column] == "").all():
        return None, []
    raw = frame[column].map(label_form) if study.label.normalise else frame[column]
    labels = effective_labels(study, raw)
    excluded = []
    for case, was, now in zip(frame["case_id"], raw, labels):
        if was == "":
            excluded.append((case, "no label"))
        elif now == "":
            excluded.append((case, f"label {was!r} is dropped by the run's label.drop"))
        elif now not in classes:
            excluded.append((case, f"class {now!r} was not seen in training ({', '.join(classes)})"))
    return labels.to_numpy(object), excluded
