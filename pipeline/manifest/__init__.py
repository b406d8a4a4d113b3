"""Manifest loading and checks, done before any work so that every problem is listed at once.

Lines are numbered as in the file (the header is line 1), so a user can jump straight to them.
Cells are text with surrounding spaces removed; labels and ids are checked for values written
more than one way, and (when fuse is to run) every class for enough patients for its split plan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import ManifestError
from pipeline.manifest.ids import check_case_ids, check_grouping_ids
from pipeline.manifest.labels import check_labels, effective_labels
from pipeline.manifest.plan import exclusions, split_problems
from pipeline.manifest.reading import CASE_ID, DELIMITERS, line, one_column_problem, read_cells, read_header

__all__ = ["CASE_ID", "Manifest", "effective_labels", "exclusions", "load_manifest", "read_header"]
log = logging.getLogger(__name__)


@dataclass
class Manifest:
    """The checked manifest: a frame of strings (numeric clinical columns as floats) and its folder."""

    frame: pd.DataFrame
    path: Path

    @property
    def base_dir(self):
        return self.path.parent

    def resolve(self, relative):
        """Absolute path of a manifest path cell (paths are relative to the manifest)."""
        return (self.base_dir / relative).resolve()

    def image_rows(self, column):
        """(case_id, absolute path) for the rows that have a file in ``column``."""
        cells = self.frame[column]
        keep = cells != ""
        return [(c, self.resolve(p)) for c, p in zip(self.frame.loc[keep, CASE_ID], cells[keep])]


def _required_columns(study, labelled=True):
    cols = [CASE_ID] + ([study.label_column] if labelled else [])
    from pipeline.manifest.roi import roi_columns  # noqa: PLC0415

    for m in study.modalities.values():
        for src in m.sources:
            cols += [src.path_column] + ([src.mask_column] if src.mask_column else []) + roi_columns(src.roi)
    cols += list(study.clinical)
    if labelled and study.fuse.group_column:
        cols.append(study.fuse.group_column)
    return list(dict.fromkeys(cols))


def _check_columns(frame, study, labelled, path, delimiter):
    missing = [c for c in _required_columns(study, labelled) if c not in frame.columns]
    if not missing:
        return
    problems = [f"column '{c}' is missing" for c in missing]
    one_column = one_column_problem(list(frame.columns))
    read_as = f" (read as {DELIMITERS[delimiter]}-separated)" if delimiter != "," else ""
    raise ManifestError(
        f"Manifest {path} lacks required column(s): {', '.join(missing)}",
        problems + ([one_column] if one_column else []),
        hint=f"Columns found{read_as}: {', '.join(frame.columns)}. Rename them, or set the column names in the "
             "study file (label.column, modalities.<name>.path_column, clinical).")


def _check_files(manifest, study, problems):
    from features.imageio import image_problem  # noqa: PLC0415  (image libraries only when files are checked)

    frame = manifest.frame
    for m in study.modalities.values():
        for src in m.sources:
            for column in filter(None, (src.path_column, src.mask_column)):
                for i, cell in enumerate(frame[column]):
                    if cell == "":
                        continue
                    problem = image_problem(manifest.resolve(cell))
                    if problem:
                        problems.append(f"{line(i)}, column '{column}': {cell}: {problem}")
            if src.roi:
                _check_rois(frame, src, problems)
            if (src.mask_column or src.roi) and not (src.roi or {}).get("missing") == "exclude":
                lacking = ~_has_lesion(frame, src) & (frame[src.path_column] != "").to_numpy()
                if m.preprocess.roi_crop and lacking.any():
                    log.warning("%d %s images (column '%s') have no lesion given; they are used uncropped",
                                int(lacking.sum()), m.name, src.path_column)
    if study.modalities:
        none = np.ones(len(frame), dtype=bool)
        for m in study.modalities.values():
            none &= ~m.has_image(frame)
        if none.all():
            problems.append("no row names an image in any modality column ("
                            + ", ".join(c for m in study.modalities.values() for c in m.image_columns) + ")")


def _has_lesion(frame, src):
    from pipeline.manifest.roi import roi_columns  # noqa: PLC0415

    columns = [src.mask_column] if src.mask_column else roi_columns(src.roi)
    out = np.zeros(len(frame), bool)
    for column in columns:
        out |= (frame[column] != "").to_numpy()
    return out


def _check_rois(frame, src, problems):
    """Every row's ROI cells read as geometry (all bad rows listed)."""
    from pipeline.manifest.roi import roi_columns, row_roi  # noqa: PLC0415

    columns = roi_columns(src.roi)
    for i, row in enumerate(frame[columns].to_dict("records")):
        try:
            row_roi(src.roi, row)
        except ValueError as exc:
            problems.append(f"{line(i)}, ROI of column '{src.path_column}' ({', '.join(columns)}): {exc}")


def _check_clinical(frame, study, problems, delimiter):
    for column, kind in study.clinical.items():
        if kind == "categorical":
            continue
        values = frame[column]
        parsed = pd.to_numeric(values.where(values != ""), errors="coerce")
        bad = (values != "") & (parsed.isna() | np.isinf(parsed.fillna(0)))
        for i in np.flatnonzero(bad.to_numpy()):
            value = values.iloc[i]
            comma = (f"; a decimal comma? write {value.replace(',', '.')!r}"
                     if delimiter != "," and pd.notna(pd.to_numeric(value.replace(",", "."), errors="coerce"))
                     else "")
            problems.append(f"{line(i)}, column '{column}': {value!r} is not a number "
                            f"(the study declares '{column}' as {kind}; leave the cell empty if unknown, "
                            f"or declare it categorical){comma}")
        frame[column] = parsed.astype(float)


def _check_grouping(frame, study, labelled, has_patients, problems, padded):
    if not labelled:
        return                                  # new cases (predict) are not split
    normalise = study.patient_id_normalise
    if has_patients:
        check_grouping_ids(frame, study.patient_column, "patient", normalise, problems, padded)
    column = study.fuse.group_column
    if column and column != study.patient_column:
        check_grouping_ids(frame, column, "group", normalise, problems, padded)


def load_manifest(study, check_files=True, labelled=True, check_split=False):
    """Read and check the study's manifest; raise ManifestError listing every problem.

    ``labelled=False`` is for `predict`: new cases need no label column. ``check_split``: the
    command will fuse, so every class must have enough patients for fuse.test_size and n_folds.
    """
    path = Path(study.manifest_path)
    frame, delimiter, padded = read_cells(path)
    _check_columns(frame, study, labelled, path, delimiter)
    has_patients = study.patient_column in frame.columns
    if not has_patients:
        log.info("no '%s' column: each case is its own patient", study.patient_column)
        frame[study.patient_column] = frame[CASE_ID]
    frame.loc[frame[study.patient_column] == "", study.patient_column] = frame[CASE_ID]
    manifest = Manifest(frame=frame, path=path.resolve())
    problems = []
    check_case_ids(frame, problems)
    _check_grouping(frame, study, labelled, has_patients, problems, padded)
    if labelled:
        check_labels(frame, study, problems, padded)
        if check_split and not problems:
            problems += split_problems(study, frame)
    _check_clinical(frame, study, problems, delimiter)
    if check_files:
        _check_files(manifest, study, problems)
    if problems:
        raise ManifestError(f"Manifest {path} has {len(problems)} problem(s):", problems,
                            hint="Fix them and run again; nothing was computed.")
    return manifest
