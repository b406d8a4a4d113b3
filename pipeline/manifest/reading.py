"""Reading the manifest CSV: its delimiter (comma, semicolon or tab), every cell as stripped text.

Rows are numbered as in the file (the header is line 1), so a user can jump straight to them.
"""

from __future__ import annotations

import csv
import logging

import numpy as np
import pandas as pd

from pipeline.errors import ManifestError

log = logging.getLogger(__name__)
CASE_ID = "case_id"
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
READ_HINT = "Save it as UTF-8 text with a header row, its cells separated by commas, semicolons or tabs."


def line(i):
    """The file line of 0-based data row ``i``."""
    return f"line {i + 2}"


def lines(rows, limit=6):
    """'line 5', 'lines 2, 3, 9' or 'lines 2, 3, 4, 5, 6, 7, … (40 rows)' for 0-based data rows."""
    numbers = [str(int(r) + 2) for r in rows]
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    more = f", … ({len(numbers)} rows)" if len(numbers) > limit else ""
    return "lines " + ", ".join(numbers[:limit]) + more


def _header_line(path):
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.readline()
    except UnicodeDecodeError as exc:
        raise ManifestError(f"Manifest {path} is not a readable CSV file:", [str(exc)], hint=READ_HINT) from None


def sniff_delimiter(path):
    """The delimiter (comma, semicolon or tab) that splits the header line into the most fields;
    comma when none splits it (a one-column header is explained where columns are missing)."""
    header = _header_line(path)
    return max(DELIMITERS, key=lambda d: len(next(csv.reader([header], delimiter=d), [])))


def read_header(path):
    """The manifest's column names, read with its own delimiter."""
    frame = pd.read_csv(path, sep=sniff_delimiter(path), nrows=0, skipinitialspace=True)
    return [c.strip() for c in frame.columns]


def read_cells(path):
    """(frame of stripped text cells, delimiter, {column: (rows whose cell had spaces around it,
    the first such cell as written)}). Surrounding spaces never count: 'Malignant ' is 'Malignant'."""
    if not path.is_file():
        raise ManifestError(f"Manifest not found: {path}",
                            hint="Set `manifest:` in the study file (relative to it) or pass --manifest.")
    delimiter = sniff_delimiter(path)
    try:
        frame = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ManifestError(f"Manifest {path} is not a readable CSV file:", [str(exc).strip()],
                            hint=READ_HINT) from None
    if delimiter != ",":
        log.info("manifest %s is %s-separated", path, DELIMITERS[delimiter])
    frame.columns = [c.strip() for c in frame.columns]
    stripped = frame.apply(lambda s: s.str.strip())
    padded = {}
    for column in frame.columns:
        rows = np.flatnonzero((frame[column] != stripped[column]).to_numpy())
        if len(rows):
            padded[column] = (rows, frame[column].iloc[rows[0]])
    return stripped, delimiter, padded


def one_column_problem(columns):
    """Why a header read as a single column is probably split by another character, or None."""
    if len(columns) != 1:
        return None
    inside = [name for char, name in {**DELIMITERS, "|": "bar", " ": "space"}.items() if char in columns[0]]
    if not inside:
        return None
    return (f"the header was read as one column, {columns[0]!r}, which holds {' and '.join(inside)} "
            "characters: separate the manifest's cells by commas, semicolons or tabs")


def warn_padded(column, padded):
    """Say that surrounding spaces were ignored in a column where they decide the study."""
    if column in padded:
        rows, example = padded[column]
        log.warning("column '%s': spaces around %d value(s) ignored (%s): %r is read as %r",
                    column, len(rows), lines(rows), example, example.strip())
