"""Importers: official public-dataset layouts (and plain folders or tables) to a manifest + study file.

``IMPORTERS`` maps each `run_pipeline.py import` format to its ``Importer``: the function
``f(source, options) -> ImportResult`` and the help `import --help` shows for it; ``run_import``
writes the result. Adding a format is its module plus one entry here. An entry names its function
rather than importing it, so that building the command line (for every command, `--help` too)
does not pay for pandas and OpenCV.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Importer:
    """A format: ``run`` is "module:function" under this package; ``source`` says what SOURCE
    is and ``summary`` what the import makes of it (both shown by `import --help`)."""

    run: str
    source: str
    summary: str

    def __call__(self, source, options):
        module, function = self.run.split(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), function)(source, options)


IMPORTERS = {
    "busi": Importer(
        "busi:import_busi",
        "Dataset_BUSI_with_GT/ (or its parent): <class>/'<class> (N).png' + '_mask.png' files.",
        "patient_id = image id (BUSI has none); dup_group = exact and near-duplicate images."),
    "mini-mias": Importer(
        "mini_mias:import_mini_mias",
        "the folder of mdbNNN.pgm files and Info.txt.",
        "Both films of a woman share a patient; label normal/benign/malignant (malignant if any "
        "finding is)."),
    "mini-ddsm": Importer(
        "mini_ddsm:import_mini_ddsm",
        "MINI-DDSM-Complete-JPEG-8/ (or its parent) with DataWMask.xlsx (or a .csv export; --table "
        "to point elsewhere).",
        "Patient = DDSM case; age and density as features."),
    "cbis-ddsm": Importer(
        "cbis_ddsm:import_cbis_ddsm",
        "the folder of the case-description CSVs (mass_/calc_case_description_train/test_set.csv); "
        "images (DICOM or PNG/JPEG) under SOURCE or --images-root, found by the CSV path or its "
        "first folder name.",
        "One case per image; official split in cbis_split."),
    "folder": Importer(
        "folder:import_folder",
        "SOURCE/<class>/**/<image> (.png .jpg .jpeg .tif .tiff .pgm .dcm).",
        "One case per image, modality --modality (default ultrasound); dup_group = exact and "
        "near-duplicate images."),
    "long": Importer(
        "long_form:import_long",
        "a long-form manifest CSV: one row per image with label, view, path (or image_path) and "
        "optional modality (else --modality), laterality (or side), patient_id, mask_path; case = "
        "--id-column when present, else patient + laterality (one case per breast).",
        "One row per case with a path column per view, pooled by mean."),
    "csv": Importer(
        "csv_join:import_csv",
        "a paired study: --table clinical.csv (one row per case, --id-column, --label-column, "
        "optional --patient-column) joined with --images MODALITY=SPEC per modality, SPEC being a "
        "glob with {id} (mg/{id}.dcm), an index CSV (columns <id> and path), or @COLUMN (a path "
        "column of the table).",
        "Relative paths are relative to SOURCE."),
}


def run_import(fmt, source, out, options=None):
    """Import ``source`` in format ``fmt`` into ``out``; return the summary lines to print."""
    from pipeline.importers.common import Options, write_import  # noqa: PLC0415

    result = IMPORTERS[fmt](source, options or Options())
    return write_import(result, out)


def __getattr__(name):
    """``Options`` lives with the importers' shared, heavy helpers: imported on first use."""
    if name == "Options":
        from pipeline.importers.common import Options  # noqa: PLC0415
        return Options
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
