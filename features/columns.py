"""Column hygiene for clinical tables: is a column a lesion box, an identifier, or constant?

Pure pandas, shared by the importers (what goes into a starter study) and the fuse stage (what
goes into a design). Empty cells and NaN are unknown values and count for nothing.
"""

from __future__ import annotations

import re

import pandas as pd

# A categorical column is identifier-like when every value differs (and there are at least
# MIN_VALUES values to judge by), or when more than MAX_SHARE of its values differ and it has more
# than MANY_LEVELS levels: one-hot encoding it learns nothing and meets unseen categories in every fold.
MIN_VALUES = 5
MAX_SHARE = 0.5
MANY_LEVELS = 50

_NUMBER = r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)\s*"
_BOX = re.compile(rf"^\s*(?:\[{_NUMBER}(?:,{_NUMBER}){{3}}\]|\({_NUMBER}(?:,{_NUMBER}){{3}}\)|"
                  rf"{_NUMBER}(?:,{_NUMBER}){{3}})\s*$")
BOX_FORM = "[x, y, w, h]"


def known(values):
    """The values of a column that are known: NaN and empty (or blank) cells dropped, as strings."""
    series = pd.Series(values, dtype=object).dropna().astype(str).str.strip()
    return series[series != ""]


def is_box(values):
    """Every known value is four comma-separated numbers, bare or in [] or (): a lesion box."""
    seen = known(values)
    return len(seen) > 0 and bool(seen.str.match(_BOX).all())


def identifier_reason(values):
    """Why a categorical column is identifier-like, or None."""
    seen = known(values)
    n, levels = len(seen), seen.nunique()
    if n >= MIN_VALUES and levels == n:
        return f"identifier-like: {levels} distinct values in {n} rows with a value (one per row)"
    if levels > MANY_LEVELS and levels > MAX_SHARE * n:
        return (f"identifier-like: {levels} distinct values in {n} rows with a value "
                f"(more than {MANY_LEVELS} levels and more than {MAX_SHARE:.0%} distinct)")
    return None


def constant_reason(values):
    """Why a column carries no information (at most one known value), or None."""
    levels = known(values).unique()
    if len(levels) == 0:
        return "constant: no row has a value"
    if len(levels) == 1:
        return f"constant: every row with a value holds {levels[0]!r}"
    return None


def column_issue(values, kind="categorical"):
    """('box' | 'identifier' | 'constant', reason) for a column that cannot be a clinical feature of
    type ``kind``, or None. A box is named first (the ROI work can use it); only categorical
    columns can be identifier-like (a numeric column's many values are its point)."""
    if kind == "categorical" and is_box(values):
        return "box", f"a lesion box {BOX_FORM} in every row with a value: a region for ROI cropping, not a category"
    reason = identifier_reason(values) if kind == "categorical" else None
    if reason:
        return "identifier", reason
    reason = constant_reason(values)
    return ("constant", reason) if reason else None


def all_numbers(values):
    """Every known value parses as a number (and there is at least one)."""
    seen = known(values)
    return len(seen) > 0 and bool(pd.to_numeric(seen, errors="coerce").notna().all())
