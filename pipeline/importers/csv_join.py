"""A paired multimodal study: a clinical table joined with one image source per modality.

`--images MODALITY=SPEC` (repeat per modality), SPEC being one of
  a pattern with {id}   `mammography=mg/{id}.dcm`, `ultrasound=us/{id}_*.png`: a glob relative to
                        SOURCE; no match = that modality is missing for the case, several = error
  an index CSV          `ultrasound=us_index.csv`: columns <id column> (or case_id) and `path`,
                        paths relative to the index file
  @COLUMN               `mammography=@mg_file`: a column of the table, paths relative to the table
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

from features.columns import all_numbers
from pipeline.errors import ConfigError, ManifestError
from pipeline.importers.common import (ASSESSMENT_WHY, ImportResult, Problems, read_table, require_dir, row_ref,
                                       starter_study)

FORMS = ("MODALITY=PATTERN-with-{id} (e.g. mammography=mg/{id}.dcm), MODALITY=INDEX.csv "
         "(columns <id column> and path), or MODALITY=@COLUMN (a path column of the table)")
# Columns whose name says they were known only after diagnosis stay out of the starter features.
LEAK_WORDS = ("patholog", "diagnos", "severity", "biopsy", "outcome", "malignan", "histolog", "label")
LEAK_REASON = "named like a result known only after the diagnosis (pathology, biopsy, outcome)"
# The radiologist's reading of the images: offered, commented, never silently included or hidden.
ASSESSMENT_WORDS = ("birads", "assessment")

COMMENTS = """\
Imported by `run_pipeline.py import csv`: the clinical table joined with one image column per
modality (empty = that modality is missing for the case; fuse imputes it per fold with an indicator).
clinical lists every other column of the table with a guessed type (numeric when every value is a
number, else categorical): REVIEW IT. Remove anything known only after the diagnosis (pathology,
biopsy, treatment); columns named like that were left out already{left_out}. Boxes, identifier-like
and constant columns are left out too, and assessment columns (BI-RADS) are offered commented under
clinical; import_notes.txt gives each reason."""


def _resolve(base, value):
    path = Path(value)
    return path if path.is_absolute() else base / path


def parse_images(specs):
    """[(modality, kind, value)] from `--images` values; every malformed one in one ConfigError."""
    parsed, bad = [], []
    for spec in specs:
        name, sep, value = spec.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or not value:
            bad.append(f"--images {spec!r}: expected {FORMS}")
        elif any(name == m for m, _, _ in parsed):
            bad.append(f"--images {spec!r}: modality '{name}' is given twice")
        elif value.startswith("@"):
            parsed.append((name, "column", value[1:]))
        elif "{id}" in value:
            parsed.append((name, "pattern", value))
        elif value.lower().endswith(".csv"):
            parsed.append((name, "index", value))
        else:
            bad.append(f"--images {spec!r}: expected {FORMS}")
    if not specs:
        bad.append(f"no --images given; expected one per modality: {FORMS}")
    if bad:
        raise ConfigError("Invalid `import csv` options:", bad, hint="See `run_pipeline.py import --help`.")
    return parsed


def _from_pattern(root, pattern, ids, problems):
    found = {}
    for case in ids:
        matches = sorted(glob.glob(str(root / pattern.replace("{id}", glob.escape(case)))))
        if len(matches) > 1:
            problems.append(f"--images pattern {pattern!r}: case '{case}' matches {len(matches)} files "
                            f"({', '.join(Path(m).name for m in matches[:3])}); make the pattern narrower")
        elif matches:
            found[case] = Path(matches[0])
    return found


def _from_index(root, index, id_column, ids, result, problems):
    path = _resolve(root, index)
    if not path.is_file():
        problems.append(f"--images index {index}: file not found")
        return {}
    frame = read_table(path)
    key = id_column if id_column in frame.columns else "case_id"
    if key not in frame.columns or "path" not in frame.columns:
        problems.append(f"{path.name}: needs columns '{id_column}' (or 'case_id') and 'path'; "
                        f"found {', '.join(frame.columns)}")
        return {}
    found = {}
    for i, (case, cell) in enumerate(zip(frame[key], frame["path"])):
        if case in found:
            problems.append(f"{row_ref(path, i)}: case '{case}' has a second image in this index")
        elif case not in ids:
            result.excluded.append((f"{row_ref(path, i)} ({cell})", f"case '{case}' is not in the table"))
        elif cell:
            found[case] = _resolve(path.parent, cell)
    return found


def _clinical(frame, used, result):
    """Every other column with a guessed type; leak-named ones left out, assessments offered."""
    clinical, left_out = {}, []
    for column in frame.columns:
        if column in used:
            continue
        if any(word in column.lower() for word in LEAK_WORDS):
            left_out.append(column)
            result.left_out.append((column, LEAK_REASON))
        elif any(word in re.sub(r"[^a-z]", "", column.lower()) for word in ASSESSMENT_WORDS):
            result.offered.append((column, ASSESSMENT_WHY))
        else:
            clinical[column] = "numeric" if all_numbers(frame[column]) else "categorical"
    return clinical, left_out


def _check_table(frame, table, options, columns, problems):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        problems.append(f"{table.name}: missing column(s) {', '.join(missing)} (found: {', '.join(frame.columns)})")
        return False
    ids = frame[options.id_column]
    for i in range(len(frame)):
        if ids[i] == "":
            problems.append(f"{row_ref(table, i)}: empty '{options.id_column}'")
        elif frame[options.label_column][i] == "":
            problems.append(f"{row_ref(table, i)}: empty '{options.label_column}'")
    for case, rows in ids[(ids != "") & ids.duplicated(keep=False)].groupby(ids).groups.items():
        problems.append(f"{table.name}: '{case}' appears more than once ("
                        + ", ".join(row_ref(table, r).split(" ", 1)[1] for r in rows) + ")")
    return True


def import_csv(source, options):
    """One row per table row; one path column per modality; the other columns as clinical."""
    root = require_dir(source, "csv")
    if options.table is None:
        raise ConfigError("`import csv` needs --table (the clinical table, one row per case; .csv or .xlsx)")
    specs = parse_images(options.images)
    table = _resolve(root, options.table)
    if not table.is_file():
        raise ManifestError(f"csv import: --table {options.table}: file not found ({table})")
    problems = Problems()
    frame = read_table(table)
    patient = options.patient_column or ("patient_id" if "patient_id" in frame.columns else None)
    used = [options.id_column, options.label_column] + ([patient] if patient else [])
    used += [v for _, kind, v in specs if kind == "column"]
    result = ImportResult("csv", table, [], [f"{m}_path" for m, _, _ in specs], {}, "")
    if _check_table(frame, table, options, used, problems):
        ids = set(frame[options.id_column]) - {""}
        paths = {}
        for modality, kind, value in specs:
            if kind == "pattern":
                paths[modality] = _from_pattern(root, value, ids, problems)
            elif kind == "index":
                paths[modality] = _from_index(root, value, options.id_column, ids, result, problems)
            else:
                paths[modality] = {c: _resolve(table.parent, p) for c, p in zip(frame[options.id_column], frame[value]) if p}
        for modality, found in paths.items():
            problems += [f"--images {modality}: case '{c}': {p} not found" for c, p in sorted(found.items())
                         if not p.is_file()]
        for values in frame.to_dict("records"):
            case = values[options.id_column]
            row = {"case_id": case, "patient_id": values[patient] if patient else case,
                   "label": values[options.label_column]}
            row.update({k: v for k, v in values.items() if k not in used})
            row.update({f"{m}_path": paths[m].get(case, "") for m, _, _ in specs})
            result.rows.append(row)
    problems.raise_if_any(f"csv import of {table}", "Fix the table, the index files or the patterns and run again.")
    clinical, left_out = _clinical(frame, used, result)
    result.study = starter_study(table.stem, [m for m, _, _ in specs], clinical=clinical, positive=None)
    if "malignant" in set(frame[options.label_column]):
        result.study["label"]["positive"] = "malignant"
    result.comments = COMMENTS.format(left_out=f": {', '.join(left_out)}" if left_out else " (none found)")
    for modality in paths:
        result.info.append(f"{modality}: {len(paths[modality])} of {len(frame)} case(s) have an image")
    return result
