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
    for m in study.modalities.values():
        cols.append(m.path_column)
        if m.mask_column:
            cols.append(m.mask_column)
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
        for column in filter(None, (m.path_column, m.mask_column)):
            for i, cell in enumerate(frame[column]):
                if cell == "":
                    continue
                problem = image_problem(manifest.resolve(cell))
                if problem:
                    problems.append(f"{line(i)}, column '{column}': {cell}: {problem}")
        if m.mask_column:
            lacking = (frame[m.mask_column] == "") & (frame[m.path_column] != "")
            if m.preprocess.roi_crop and lacking.any():
                log.warning("%d %s images have no mask in '%s'; they are used uncropped",
                            int(lacking.sum()), m.name, m.mask_column)
    if study.modalities:
        none = np.ones(len(frame), dtype=bool)
        for m in study.modalities.values():
            none &= (frame[m.path_column] == "").to_numpy()
        if none.all():
            problems.append("no row names an image in any modality column ("
                            + ", ".join(m.path_column for m in study.modalities.values()) + ")")


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
