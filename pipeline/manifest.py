"""Manifest loading and checks, done before any work so that every problem is listed at once.

Lines are numbered as in the file (the header is line 1), so a user can jump straight to them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import ManifestError

log = logging.getLogger(__name__)
CASE_ID = "case_id"


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


def _line(i):
    return f"line {i + 2}"


def _read_csv(path):
    if not path.is_file():
        raise ManifestError(f"Manifest not found: {path}",
                            hint="Set `manifest:` in the study file (relative to it) or pass --manifest.")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ManifestError(f"Manifest {path} is not a readable CSV file:", [str(exc).strip()],
                            hint="Save it as comma-separated UTF-8 text with a header row.") from None
    frame.columns = [c.strip() for c in frame.columns]
    return frame.apply(lambda s: s.str.strip())


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


def _check_ids(frame, problems):
    ids = frame[CASE_ID]
    for i in np.flatnonzero(ids == ""):
        problems.append(f"{_line(i)}, column '{CASE_ID}': empty case id")
    dup = ids[(ids != "") & ids.duplicated(keep=False)]
    for case, rows in dup.groupby(dup).groups.items():
        lines = ", ".join(str(r + 2) for r in rows)
        problems.append(f"column '{CASE_ID}': '{case}' appears more than once (lines {lines})")


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
                    problems.append(f"{_line(i)}, column '{column}': {cell}: {problem}")
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


def _check_clinical(frame, study, problems):
    for column, kind in study.clinical.items():
        if kind == "categorical":
            continue
        values = frame[column]
        parsed = pd.to_numeric(values.where(values != ""), errors="coerce")
        bad = (values != "") & (parsed.isna() | np.isinf(parsed.fillna(0)))
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(f"{_line(i)}, column '{column}': {values.iloc[i]!r} is not a number "
                            f"(the study declares '{column}' as {kind}; leave the cell empty if unknown, "
                            f"or declare it categorical)")
        frame[column] = parsed.astype(float)


def effective_labels(study, labels):
    """Labels after the study's `label.map` merges and `label.drop` exclusions ('' = dropped)."""
    mapping = {str(k): str(v) for k, v in study.label.map.items()}
    dropped = {str(d) for d in study.label.drop}
    return labels.map(lambda v: "" if v in dropped else mapping.get(v, v))


def _check_labels(frame, study, problems):
    labels = frame[study.label_column]
    for i in np.flatnonzero((labels == "").to_numpy()):
        problems.append(f"{_line(i)}, column '{study.label_column}': empty label")
    effective = effective_labels(study, labels)
    classes = sorted(set(effective[effective != ""]))
    if len(classes) < 2:
        found = f"only '{classes[0]}'" if classes else "none"
        problems.append(f"column '{study.label_column}': at least two classes are needed, found {found}")
    positive = study.label.positive
    if positive is not None and classes and positive not in classes:
        problems.append(f"label.positive is '{positive}', but column '{study.label_column}' has only "
                        f"{', '.join(repr(c) for c in classes)}")


def load_manifest(study, check_files=True, labelled=True):
    """Read and check the study's manifest; raise ManifestError listing every problem.

    ``labelled=False`` is for `predict`: new cases need no label column.
    """
    path = Path(study.manifest_path)
    frame = _read_csv(path)
    missing = [c for c in _required_columns(study, labelled) if c not in frame.columns]
    if missing:
        raise ManifestError(
            f"Manifest {path} lacks required column(s): {', '.join(missing)}",
            [f"column '{c}' is missing" for c in missing],
            hint=f"Columns found: {', '.join(frame.columns)}. Rename them, or set the column names in the "
                 "study file (label.column, modalities.<name>.path_column, clinical).")
    if study.patient_column not in frame.columns:
        log.info("no '%s' column: each case is its own patient", study.patient_column)
        frame[study.patient_column] = frame[CASE_ID]
    frame.loc[frame[study.patient_column] == "", study.patient_column] = frame[CASE_ID]
    manifest = Manifest(frame=frame, path=path.resolve())
    problems = []
    _check_ids(frame, problems)
    if labelled:
        _check_labels(frame, study, problems)
    _check_clinical(frame, study, problems)
    if check_files:
        _check_files(manifest, study, problems)
    if problems:
        raise ManifestError(f"Manifest {path} has {len(problems)} problem(s):", problems,
                            hint="Fix them and run again; nothing was computed.")
    return manifest
