"""CBIS-DDSM: the four case-description CSVs plus the images, as DICOM or as a PNG/JPEG tree.

A CSV row is one finding; a case is one image (patient + side + view). Image paths in the CSVs
resolve under the image root as written, or else by their first folder name
(e.g. `Mass-Training_P_00001_LEFT_CC`), which names the image in TCIA downloads and most
converted trees.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.importers.common import (
    ASSESSMENT_WHY,
    ImportResult,
    Problems,
    is_image,
    joined,
    number_problem,
    read_table,
    require_dir,
    row_ref,
    starter_study,
)

_TABLE = re.compile(r"^(mass|calc)_case_description_(train|test)_set\.csv$", re.IGNORECASE)
COLUMNS = ("patient id", "breast density", "left or right breast", "image view", "abnormality id",
           "abnormality type", "assessment", "pathology", "subtlety", "image file path",
           "roi mask file path")
PATHOLOGIES = {"MALIGNANT": "malignant", "BENIGN": "benign", "BENIGN_WITHOUT_CALLBACK": "benign"}

COMMENTS = """\
CBIS-DDSM (Lee et al., Scientific Data 4, 170177 (2017)), imported by
`run_pipeline.py import cbis-ddsm`. One case per image (patient + side + view); malignant if any
finding on it is malignant (BENIGN_WITHOUT_CALLBACK counts as benign). patient_id groups a woman's
images into one fold. clinical: density (ACR 1-4, ordinal). assessment (BI-RADS, ';'-joined when an
image has several findings) is offered, commented, under clinical: the radiologist's reading of the
images, made before biopsy, so a study may include it, knowing it is a very strong predictor.
The manifest also keeps pathology, subtlety and abnormality_type: they are NOT features
(pathology IS the label; subtlety and abnormality_type describe the lesion once it was found).
cbis_split holds the official train/test split; the fuse stage draws its own patient-wise split.
mask_path (ROI masks) is not used: turn on roi_crop with mask_column: mask_path if you want crops."""


def _normalise(name):
    return re.sub(r"[\s_]+", " ", str(name).strip().lower())


class _Images:
    """Finds a CSV path's file: as written, or by its first folder name anywhere under the root."""

    def __init__(self, root):
        self.root, self._index = root, None

    def _build(self):
        self._index = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and is_image(path):
                rel = path.relative_to(self.root)
                for key in {path.stem, *rel.parts[:-1]}:
                    self._index.setdefault(key, []).append(path)

    def find(self, cell, prefer=None):
        """(path, None) or (None, why); ``prefer`` breaks ties between several files of one folder."""
        cell = cell.strip().strip('"').strip()
        direct = self.root / cell
        if direct.is_file():
            return direct, None
        if self._index is None:
            self._build()
        parts = [p for p in re.split(r"[\\/]+", cell) if p]
        found = self._index.get(parts[0], []) if parts else []
        if len(found) > 1:
            found = [p for p in found if p.name == parts[-1]] or found
        if len(found) > 1 and prefer:
            found = [p for p in found if prefer(p)] or found
        if len(found) == 1:
            return found[0], None
        if not found:
            return None, f"{cell!r} not found under {self.root} (neither as written nor by its folder {parts[0]!r})"
        return None, (f"{cell!r} is ambiguous: {len(found)} images under folder {parts[0]!r} "
                      f"({', '.join(p.name for p in found[:4])})")


def _is_mask(path):
    """TCIA keeps the ROI mask and the cropped lesion in one folder; the mask's series says so."""
    if path.suffix.lower() != ".dcm":
        return "mask" in path.name.lower()
    import pydicom  # noqa: PLC0415  only DICOM trees need it

    try:
        return "mask" in str(pydicom.dcmread(path, stop_before_pixels=True).get("SeriesDescription", "")).lower()
    except Exception:  # noqa: BLE001  an unreadable header is simply not the mask
        return False


def _read_findings(tables, images, problems, ambiguous):
    findings = []
    for table in tables:
        kind, split = _TABLE.match(table.name).groups()
        frame = read_table(table)
        frame.columns = [_normalise(c) for c in frame.columns]
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            problems.append(f"{table.name}: missing column(s) {', '.join(missing)}")
            continue
        for i, v in enumerate(frame.to_dict("records")):
            where = row_ref(table, i)
            bad = [p for p in (number_problem(v["breast density"], "breast density"),) if p]
            if v["pathology"].upper() not in PATHOLOGIES:
                bad.append(f"column 'pathology': {v['pathology']!r} is not one of {', '.join(PATHOLOGIES)}")
            if v["left or right breast"].upper() not in ("LEFT", "RIGHT") or v["image view"].upper() not in ("CC", "MLO"):
                bad.append(f"side/view {v['left or right breast']!r}/{v['image view']!r} is not LEFT|RIGHT / CC|MLO")
            image, why = images.find(v["image file path"])
            if why:
                bad.append(f"column 'image file path': {why}")
            mask = None
            if v["roi mask file path"].strip():
                mask, why = images.find(v["roi mask file path"], prefer=_is_mask)
                if why and mask is None and "ambiguous" in why:
                    ambiguous.append(f"{where}: ROI mask {why}; mask left empty")
                elif why:
                    bad.append(f"column 'ROI mask file path': {why}")
            if bad:
                problems += [f"{where}: {b}" for b in bad]
                continue
            findings.append({**v, "image": image, "mask": mask, "set": kind.lower(), "split": split.lower(),
                             "where": where})
    return findings


def _case(case_id, items, result):
    first = items[0]
    densities = sorted({f["breast density"] for f in items})
    if len(densities) > 1:
        result.info.append(f"{case_id}: breast density differs between rows {densities}; kept {first['breast density']}")
    images = sorted({str(f["image"]) for f in items})
    if len(images) > 1:
        result.info.append(f"{case_id}: {len(images)} image files (mass and calc sets); kept {first['image']}")
    labels = [PATHOLOGIES[f["pathology"].upper()] for f in items]
    masks = [f["mask"] for f in items if f["mask"] is not None]
    return {"case_id": case_id, "patient_id": first["patient id"],
            "label": "malignant" if "malignant" in labels else "benign",
            "mammography_path": first["image"], "mask_path": masks[0] if masks else "",
            "extra_mask_paths": masks[1:], "side": first["left or right breast"].lower(),
            "view": first["image view"].upper(), "density": first["breast density"],
            "abnormality_type": joined(f["abnormality type"] for f in items),
            "n_abnormalities": str(len(items)),
            "assessment": joined(f["assessment"] for f in items),
            "pathology": joined(f["pathology"] for f in items),
            "subtlety": joined(f["subtlety"] for f in items),
            "cbis_split": joined(sorted({f["split"] for f in items}))}


def import_cbis_ddsm(source, options):
    """One row per image with the official split; pathology kept out of features, BI-RADS offered."""
    root = require_dir(source, "cbis-ddsm")
    problems = Problems()
    tables = sorted((p for p in root.rglob("*.csv") if _TABLE.match(p.name)), key=lambda p: p.name.lower())
    if not tables:
        problems.append(f"{root}: no case-description CSV (mass_case_description_train_set.csv, "
                        "calc_case_description_test_set.csv, ...) found")
    image_root = Path(options.images_root) if options.images_root else root
    if not image_root.is_dir():
        problems.append(f"--images-root {image_root}: folder not found")
    ambiguous = []
    findings = _read_findings(tables, _Images(image_root), problems, ambiguous) if image_root.is_dir() else []
    problems.raise_if_any(f"CBIS-DDSM source {root}", "Fix the CSVs or the image tree (or pass --images-root) "
                                                      "and run the import again.")
    result = ImportResult("cbis-ddsm", root, [], ["mammography_path", "mask_path", "extra_mask_paths"],
                          starter_study("CBIS-DDSM mammography", ["mammography"], clinical={"density": "ordinal"}),
                          COMMENTS)
    cases = {}
    for f in findings:
        key = f"{f['patient id']}_{f['left or right breast'].upper()}_{f['image view'].upper()}"
        cases.setdefault(key, []).append(f)
    result.rows = [_case(k, cases[k], result) for k in sorted(cases)]
    if options.level == "breast":
        from pipeline.importers.views import breast_level  # noqa: PLC0415
        breast_level(result)
    result.offered.append(("assessment", ASSESSMENT_WHY))
    result.info += ambiguous
    result.info.insert(0, f"findings: {len(findings)} row(s) in {len(tables)} CSV(s) "
                          f"({', '.join(t.name for t in tables)})")
    return result
