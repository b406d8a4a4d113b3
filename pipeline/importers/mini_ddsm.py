"""Mini-DDSM as downloaded: MINI-DDSM-Complete-JPEG-8/{Benign,Cancer,Normal}/NNNN/*.jpg + DataWMask.xlsx.

The spreadsheet (or a CSV export of it) is the truth: one row per image with its view, side,
case status (the label), age and density, and the lesion outline files (`*_Mask.jpg`).
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.importers.common import (
    ImportResult,
    Problems,
    descend,
    number_problem,
    read_table,
    require_dir,
    row_ref,
    starter_study,
)

TOP = "MINI-DDSM-Complete-JPEG-8"
TABLES = ("DataWMask.xlsx", "DataWMask.csv")
COLUMNS = ("fullPath", "fileName", "View", "Side", "Status", "Age", "Density")
MASK_COLUMNS = ("Tumour_Contour", "Tumour_Contour2")
LABELS = {"benign": "benign", "cancer": "malignant", "normal": "normal"}
_MASK = re.compile(r"_mask\d*$", re.IGNORECASE)
_NO_FILE = {"", "-", "nan", "none"}

COMMENTS = """\
Mini-DDSM (Lekamlage et al., DMIP 2020; DDSM: Heath et al., 2001), imported by
`run_pipeline.py import mini-ddsm`. The label is the case Status (Benign -> benign, Cancer ->
malignant, Normal -> normal): it is per woman, so the breast without a lesion carries it too.
patient_id is the DDSM case (C_NNNN): all four views of a woman share a fold.
clinical: age (numeric) and density (ACR 1-4, ordinal), both from the spreadsheet.
mask_path holds the lesion outline (Tumour_Contour) but is NOT used: normal cases have no outline,
so whether a mask exists gives the label away, and the files are thin outlines, not filled regions."""


def _find_table(root, options, problems):
    if options.table is not None:
        table = Path(options.table)
        table = table if table.is_absolute() else root / table
        if not table.is_file():
            problems.append(f"--table {options.table}: file not found")
            return None
        return table
    for folder in (root, descend(root, TOP)):
        for name in TABLES:
            if (folder / name).is_file():
                return folder / name
    problems.append(f"{root}: the spreadsheet {' or '.join(TABLES)} was not found (pass --table)")
    return None


def _resolver(root):
    """fullPath cells resolve under the dataset folder, with either slash, with or without its name."""
    tree = descend(root, TOP)

    def resolve(cell):
        parts = [p for p in re.split(r"[\\/]+", cell) if p]
        if parts and parts[0] == TOP:
            parts = parts[1:]
        for base in (tree, root):
            path = base.joinpath(*parts)
            if path.is_file():
                return path
        return None

    return resolve, tree


def _patient(file_name):
    """C_0029_1.LEFT_CC.jpg -> C_0029 (the DDSM case: one woman)."""
    return re.sub(r"_\d+$", "", file_name.split(".")[0])


def _row(values, where, resolve, problems):
    bad = [p for p in (number_problem(values["Age"], "Age"), number_problem(values["Density"], "Density")) if p]
    status = values["Status"].lower()
    if status not in LABELS:
        bad.append(f"column 'Status': {values['Status']!r} is not Benign, Cancer or Normal")
    image = resolve(values["fullPath"]) if values["fullPath"] else None
    if image is None:
        bad.append(f"column 'fullPath': image {values['fullPath']!r} not found")
    masks = []
    for column in MASK_COLUMNS:
        cell = values.get(column, "")
        if cell.lower() in _NO_FILE:
            continue
        mask = resolve(cell)
        if mask is None:
            bad.append(f"column '{column}': mask {cell!r} not found")
        masks.append(mask)
    if bad:
        problems += [f"{where}: {b}" for b in bad]
        return None
    name = values["fileName"] or image.name
    return {"case_id": Path(name).stem, "patient_id": _patient(name), "label": LABELS[status],
            "mammography_path": image, "mask_path": masks[0] if masks else "",
            "extra_mask_paths": masks[1:], "view": values["View"].upper(), "side": values["Side"].lower(),
            "age": values["Age"], "density": values["Density"], "status": values["Status"]}


def _disk_check(tree, rows, result, problems):
    """Images on disk the sheet does not name are excluded; masks on disk need their image."""
    named = {Path(r["mammography_path"]).resolve() for r in rows}
    for path in sorted(tree.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in (".jpg", ".jpeg"):
            continue
        if _MASK.search(path.stem):
            image = path.with_name(_MASK.sub("", path.stem) + path.suffix)
            if not image.is_file():
                problems.append(f"{path}: mask without an image (expected {image.name} beside it)")
        elif path.resolve() not in named:
            result.excluded.append((str(path), "image not named in the spreadsheet, so no label"))


def import_mini_ddsm(source, options):
    """One row per image; patient = DDSM case; age and density as clinical features."""
    root = require_dir(source, "mini-ddsm")
    problems = Problems()
    table = _find_table(root, options, problems)
    result = ImportResult("mini-ddsm", root, [], ["mammography_path", "mask_path", "extra_mask_paths"],
                          starter_study("Mini-DDSM mammography", ["mammography"],
                                        clinical={"age": "numeric", "density": "ordinal"}), COMMENTS)
    rows = []
    if table is not None:
        frame = read_table(table)
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            problems.append(f"{table.name}: missing column(s) {', '.join(missing)} "
                            f"(found: {', '.join(frame.columns)})")
        else:
            resolve, tree = _resolver(root)
            for i, values in enumerate(frame.to_dict("records")):
                row = _row(values, row_ref(table, i), resolve, problems)
                if row:
                    rows.append(row)
            _disk_check(tree, rows, result, problems)
    problems.raise_if_any(f"Mini-DDSM source {root}", "Fix the spreadsheet or the image files and run the "
                                                      "import again.")
    result.rows = rows
    if options.level == "breast":
        from pipeline.importers.views import breast_level  # noqa: PLC0415
        breast_level(result)
    result.info.append(f"masks: {sum(1 for r in rows if r['mask_path'])} image(s) with a lesion outline; "
                       f"views: {', '.join(sorted({r['view'] for r in rows}))}")
    return result
