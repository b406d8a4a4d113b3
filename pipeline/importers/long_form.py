"""A long-form manifest (one row per image: case, modality, view, laterality, path) to one row per
case with a path column per view, so a case's views are embedded once each and pooled.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.importers.common import ImportResult, Problems, read_table, starter_study
from pipeline.importers.views import pivot_views

PATHS = ("path", "image_path", "file")
LATERALITY = ("laterality", "side")
COMMENTS = """\
Imported by `run_pipeline.py import long` from a manifest with one row per image. Each case's
images are one row here, a path column per (modality, view); the views are pooled by mean
(modalities.<m>.pool: max, or concat for a block per view, a missing view then being imputed
with its indicator). Columns equal on every image of a case are kept; the label is malignant if
any image's is. Paths are relative to this manifest."""


def _first(columns, names):
    return next((c for c in names if c in columns), None)


def import_long(source, options):
    """SOURCE: the long-form CSV. Case = --id-column (default case_id) if there is one and --level is
    not breast, else patient + laterality."""
    source = Path(source)
    problems = Problems()
    if not source.is_file():
        problems.append(f"{source}: the long-form manifest (a CSV with one row per image) was not found")
        problems.raise_if_any("Long-form source", "Pass the CSV file as SOURCE.")
    frame = read_table(source)
    columns = list(frame.columns)
    path_column = _first(columns, (*PATHS, f"{options.modality}_path"))
    side = _first(columns, LATERALITY)
    patient = options.patient_column or "patient_id"
    has_case = options.id_column in columns and options.level != "breast"
    needed = [(options.label_column, "the class"), ("view", "the view (CC, MLO, ...)")]
    needed += [] if has_case else [(patient, "the patient (cases are then patient + laterality)")]
    missing = [f"column '{c}' ({why}) is missing" for c, why in needed if c not in columns]
    if path_column is None:
        missing.append(f"no image path column (one of {', '.join(PATHS)})")
    if not has_case and side is None:
        missing.append(f"no case id column '{options.id_column}' and no laterality column "
                       f"({' or '.join(LATERALITY)}) to make one per breast")
    if missing:
        problems += missing
        problems.raise_if_any(f"Long-form manifest {source}", f"Columns found: {', '.join(columns)}.")
    base = source.resolve().parent
    rows = []
    for i, values in enumerate(frame.to_dict("records")):
        where = f"{source.name} line {i + 2}"
        path = base / values[path_column] if values[path_column] else None
        if path is None or not path.is_file():
            problems.append(f"{where}: image {values[path_column]!r} not found")
            continue
        if not values["view"]:
            problems.append(f"{where}: the view is empty")
            continue
        row = {**values, "path": path, "label": values[options.label_column]}
        row["case_id"] = values.get(options.id_column, "") or path.stem
        row["patient_id"] = values.get(patient, "") or row["case_id"]
        if values.get("mask_path"):
            row["mask_path"] = base / values["mask_path"]
        rows.append(row)
    problems.raise_if_any(f"Long-form manifest {source}", "Fix these rows and import again.")
    modalities = sorted({r.get("modality") or options.modality for r in rows})
    result = ImportResult("long", source, rows, [], starter_study(f"{source.resolve().parent.name} (views)", modalities), COMMENTS)
    if has_case:
        case_of = lambda r: r[options.id_column]  # noqa: E731
    else:
        case_of = lambda r: f"{r['patient_id']}_{str(r[side]).upper()}"  # noqa: E731
    return pivot_views(result, case_of, lambda r: r["view"].lower().replace(" ", "_"),
                       lambda r: r.get("modality") or options.modality,
                       skip=(path_column, options.label_column, options.id_column, "image_id"))
