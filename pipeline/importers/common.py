"""What every importer shares: the result it returns, problem collection, tables, paths, writing.

An importer reads an official dataset layout and returns an ``ImportResult``; nothing is written
until every problem has been found, so a bad source costs one run to diagnose.
"""

from __future__ import annotations

import os
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from features.columns import BOX_FORM, all_numbers, column_issue
from features.duplicates import THUMBNAIL, duplicate_pairs, pixel_digest, thumbnail_signature
from features.duplicates import duplicate_groups as duplicate_groups_of
from features.errors import FeaturesError
from features.imageio import read_gray
from pipeline.storage import write_atomic, write_csv
from pipeline.errors import ConfigError, ManifestError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm", ".dcm")
NOTES_FILE = "import_notes.txt"
KNOWN_KINDS = ("mammography", "ultrasound")
# Why an assessment column is offered (commented) rather than included or hidden.
ASSESSMENT_WHY = ("BI-RADS is the radiologist's assessment of the images, made before biopsy: a "
                  "legitimate (and very strong) predictor that a study may choose to include; results "
                  "with it no longer measure what the images alone predict.")


@dataclass
class Options:
    """Command-line options of `import`; each format reads the ones it needs."""

    modality: str = "ultrasound"
    table: Path | None = None
    id_column: str = "case_id"
    label_column: str = "label"
    patient_column: str | None = None
    images: tuple = ()
    images_root: Path | None = None
    dup_hash: bool = True
    near_duplicates: float = 0.95
    level: str = "image"                 # mini-ddsm, cbis-ddsm: one case per image, or per breast (CC + MLO)


@dataclass
class ImportResult:
    """A manifest in memory: rows whose path cells are absolute Paths (or lists of them)."""

    fmt: str
    source: Path
    rows: list
    path_columns: list
    study: dict
    comments: str
    excluded: list = field(default_factory=list)  # (item, reason)
    info: list = field(default_factory=list)  # format-specific facts for the summary
    tables: dict = field(default_factory=dict)  # name -> frame, written as <name>.csv beside the manifest
    left_out: list = field(default_factory=list)  # (column, reason): kept in the manifest, not a feature
    offered: list = field(default_factory=list)  # (column, why): written commented under clinical
    boxes: list = field(default_factory=list)  # columns of lesion boxes [x, y, w, h]


class Problems(list):
    """Every problem found in a source; ``raise_if_any`` turns them into one user error."""

    def raise_if_any(self, what, hint):
        if self:
            raise ManifestError(f"{what} has {len(self)} problem(s):", list(self), hint=hint)


def descend(source, name):
    """Accept either the dataset's own top folder or the folder that holds it."""
    inner = Path(source) / name
    return inner if inner.is_dir() else Path(source)


def require_dir(source, what):
    source = Path(source)
    if not source.is_dir():
        raise ManifestError(f"{what}: source folder not found: {source}",
                            hint="Pass the folder of the dataset as it was downloaded (see `import --help`).")
    return source


def case_insensitive(folder, name):
    """The entry of ``folder`` named ``name`` in any letter case, or None."""
    for child in sorted(Path(folder).iterdir()):
        if child.name.lower() == name.lower():
            return child
    return None


def is_image(path):
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_table(path):
    """A .csv or .xlsx table as strings ('' for empty cells); row i is spreadsheet row/CSV line i + 2."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except ImportError as exc:
        raise ConfigError(f"Cannot read {path}: {exc}",
                          hint="Install openpyxl (`pip install openpyxl`), or export the sheet as CSV.") from None
    except Exception as exc:  # noqa: BLE001  pandas and openpyxl raise many types for a bad file
        raise ManifestError(f"Table {path} is not readable:", [f"{type(exc).__name__}: {exc}"],
                            hint="Save it as comma-separated UTF-8 text (or .xlsx) with one header row.") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.apply(lambda s: s.astype(str).str.strip())


def row_ref(path, i):
    """How a problem names a table row: the line (CSV) or row (spreadsheet) a user can jump to."""
    unit = "row" if Path(path).suffix.lower() in (".xlsx", ".xlsm") else "line"
    return f"{Path(path).name} {unit} {i + 2}"


def number_problem(value, column):
    """Why a cell that should be a number is not, or None (empty = unknown is fine)."""
    if value == "":
        return None
    try:
        float(value)
    except ValueError:
        return f"column '{column}': {value!r} is not a number (leave the cell empty if unknown)"
    return None


def require_images(result, problems, expected):
    """A source in which nothing was found says so (unless another problem already explains it)."""
    if not result.rows and not problems:
        problems.append(f"{result.source}: no image found (expected {expected})")


def add_duplicate_groups(result, path_column, problems, options):
    """``dup_group`` on every row, kept within one fold by the starter study: images of one lesion
    saved twice must not be scored against each other (``--no-dup-hash`` skips the check)."""
    if not result.rows:
        return
    if not options.dup_hash:
        for row in result.rows:
            row["dup_group"] = ""
        result.info.append("duplicate check skipped (--no-dup-hash): dup_group is empty")
        return
    groups, exact, near = duplicate_groups(result, path_column, problems, options.near_duplicates)
    result.study.setdefault("fuse", {})["group_column"] = "dup_group"
    result.info.append(f"duplicates: {exact} exact and {near} near pair(s) (thumbnail correlation >= "
                       f"{options.near_duplicates}) in {groups} group(s), "
                       f"{sum(1 for r in result.rows if r['dup_group'])} image(s) in column dup_group; "
                       f"pairs in duplicates.csv")


def duplicate_groups(result, path_column, problems, threshold):
    """Set ``pixel_sha256`` and ``dup_group`` on every row: dupNNN joins pixel-identical images and
    near-duplicates (thumbnail correlation >= threshold), transitively; every pair goes to
    duplicates.csv beside the manifest. Returns (groups, exact pairs, near pairs)."""
    rows = sorted(result.rows, key=lambda r: r["case_id"])
    digests, signatures = [], []
    for row in rows:
        try:
            gray = read_gray(row[path_column])
            digests.append(pixel_digest(gray))
            signatures.append(thumbnail_signature(gray))
        except FeaturesError as exc:
            digests.append("")
            signatures.append(np.zeros(THUMBNAIL * THUMBNAIL, np.float32))
            problems.append(str(exc))
        row["pixel_sha256"] = digests[-1]
    pairs = duplicate_pairs(digests, signatures, threshold)
    groups = duplicate_groups_of(len(rows), pairs)
    for row, g in zip(rows, groups):
        row["dup_group"] = f"dup{g + 1:03d}" if g >= 0 else ""
    result.tables["duplicates"] = pd.DataFrame(
        [{"case_id_a": rows[i]["case_id"], "case_id_b": rows[j]["case_id"], "label_a": rows[i]["label"],
          "label_b": rows[j]["label"], "kind": kind, "thumb_corr": round(c, 4), "dup_group": rows[i]["dup_group"]}
         for i, j, kind, c in pairs],
        columns=["case_id_a", "case_id_b", "label_a", "label_b", "kind", "thumb_corr", "dup_group"])
    exact = sum(1 for p in pairs if p[2] == "exact")
    return int(groups.max() + 1), exact, len(pairs) - exact


def joined(values):
    """Several findings of one image in one cell, ';'-separated (the shared manifests' convention)."""
    return ";".join(str(v) for v in values)


def preprocessing_kind(modality):
    return modality if modality in KNOWN_KINDS else "none"


def _relative(value, out_dir):
    if isinstance(value, (list, tuple)):
        return joined(_relative(v, out_dir) for v in value)
    if value in (None, ""):
        return ""
    return Path(os.path.relpath(os.path.abspath(value), out_dir)).as_posix()


def to_frame(result, out_dir):
    """The manifest frame: sorted by case id, path cells relative to ``out_dir``."""
    if not result.rows:
        raise ManifestError(f"{result.fmt}: no case found in {result.source}",
                            hint="Check SOURCE and the layout `import --help` describes for this format.")
    frame = pd.DataFrame(result.rows).fillna("")
    for column in result.path_columns:
        frame[column] = [_relative(v, out_dir) for v in frame[column]]
    first = ["case_id", "patient_id", "label", *result.path_columns]
    order = first + [c for c in frame.columns if c not in first]
    frame = frame[order].sort_values("case_id", kind="stable").reset_index(drop=True)
    dup = frame["case_id"][frame["case_id"].duplicated()]
    if len(dup):
        raise ManifestError(f"{result.fmt}: the source gives the same case id to several images:",
                            [f"case id '{c}'" for c in sorted(set(dup))],
                            hint="Rename the files so that each image has its own name.")
    return frame.astype(str)


def screen_columns(result, frame):
    """Leave out of the starter study every clinical or offered column that is a box, identifier-like
    or constant in ``frame`` (the manifest), with its reason; return {offered column: guessed type}."""
    clinical = result.study["clinical"]
    for column, kind in list(clinical.items()):
        issue = column_issue(frame[column], kind)
        if issue:
            del clinical[column]
            result.left_out.append((column, issue[1]))
            if issue[0] == "box":
                result.boxes.append(column)
    offered = {}
    for column, why in result.offered:
        kind = "ordinal" if all_numbers(frame[column]) else "categorical"
        issue = column_issue(frame[column], kind)
        if issue:
            result.left_out.append((column, issue[1]))
        else:
            offered[column] = (kind, why)
    return offered


def study_text(result, offered):
    """study.yaml: the comments, the study, offered columns commented under clinical, boxes noted."""
    lines = result.comments.strip().splitlines()
    if result.boxes:
        lines += textwrap.wrap(f"Lesion boxes {BOX_FORM}, one per row, in column(s) {', '.join(result.boxes)}: "
                               "kept in the manifest for ROI cropping, never a feature. There is no study "
                               "key for boxes yet (ROI crops come from mask_column); for reference:", 96)
        lines += [f"  roi_box_column: {c}" for c in result.boxes]
    header = "".join(f"# {line}".rstrip() + "\n" for line in lines)
    body = yaml.safe_dump(result.study, sort_keys=False)
    if not offered:
        return header + body
    comment = []
    for column, (kind, why) in offered.items():
        comment += [f"  # {line}" for line in textwrap.wrap(f"{why} To include it, uncomment:", 96)]
        comment.append(f"  # {yaml.safe_dump({column: kind}).strip()}")
    out = body.splitlines()
    start = out.index("clinical: {}") if "clinical: {}" in out else out.index("clinical:")
    out[start] = "clinical:"
    end = start + 1
    while end < len(out) and out[end].startswith(" "):
        end += 1
    return header + "\n".join(out[:end] + comment + out[end:]) + "\n"


def _counts(series):
    return ", ".join(f"{k} {v}" for k, v in sorted(Counter(series).items()))


def summary_lines(result, frame, out_dir, offered, full=False):
    """The import summary: cases per class and modality, exclusions, the next commands."""
    study_file = out_dir / "study.yaml"
    lines = [f"import {result.fmt}: {len(frame)} case(s) from {result.source} -> {out_dir / 'manifest.csv'}",
             f"  label: {_counts(frame['label'])}",
             f"  patients: {frame['patient_id'].nunique()}"]
    for name, settings in result.study["modalities"].items():
        views = settings.get("views") or {"": {"path_column": settings["path_column"]}}
        for view, item in views.items():
            column = item["path_column"]
            lines.append(f"  {name}{' ' + view if view else ''}: {int((frame[column] != '').sum())} image(s) "
                         f"in column '{column}'")
    lines += [f"  {line}" for line in result.info]
    clinical = result.study.get("clinical") or {}
    lines.append("  clinical: " + (", ".join(f"{c} ({k})" for c, k in clinical.items()) or "none"))
    lines += [f"    offered, commented in study.yaml: {c} ({k})" + (f": {why}" if full else "")
              for c, (k, why) in offered.items()]
    lines += [f"    left out: {c}: {reason}" for c, reason in result.left_out]
    shown = result.excluded if full else result.excluded[:10]
    lines.append(f"  excluded: {len(result.excluded)}" + (f" (all listed in {out_dir / NOTES_FILE})"
                                                          if result.excluded else ""))
    lines += [f"    - {item}: {reason}" for item, reason in shown]
    if len(shown) < len(result.excluded):
        lines.append(f"    ... and {len(result.excluded) - len(shown)} more")
    if frame["label"].nunique() < 2:
        lines.append("  WARNING: fewer than two classes; the stages need at least two.")
    lines += ["next (review study.yaml first): every stage, extract to report:",
              f"  python run_pipeline.py run -c {study_file}"]
    return lines


def write_import(result, out_dir):
    """Write manifest.csv, study.yaml and the notes into ``out_dir``; return the summary lines."""
    out_dir = Path(out_dir).resolve()
    frame = to_frame(result, out_dir)
    offered = screen_columns(result, frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / "manifest.csv", frame)
    write_atomic(out_dir / "study.yaml", study_text(result, offered))
    for name, table in result.tables.items():
        write_csv(out_dir / f"{name}.csv", table)
    notes = summary_lines(result, frame, out_dir, offered, full=True)
    write_atomic(out_dir / NOTES_FILE, "\n".join(notes) + "\n")
    return summary_lines(result, frame, out_dir, offered)


def starter_study(name, modalities, clinical=None, positive="malignant", fuse=None, label=None):
    """The study dict written beside the manifest; the stages read it as is."""
    study = {"study": name, "manifest": "manifest.csv", "output": "run", "seed": 0,
             "label": {"column": "label", "positive": positive, **(label or {})},
             "patient_column": "patient_id",
             "modalities": {m: {"path_column": f"{m}_path", "preprocessing": {"kind": preprocessing_kind(m)}}
                            for m in modalities},
             "clinical": dict(clinical or {}),
             "extract": {"backbones": ["resnet50", "vgg16", "efficientnetb0", "handcrafted"],
                         "weights": "imagenet"}}
    if fuse:
        study["fuse"] = dict(fuse)
    return study
