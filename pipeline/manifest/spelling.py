"""Values written more than one way: labels that differ only in case or spaces, ids that are one
number (1, 1.0, 01). Found, listed with their lines, or rewritten to one normal form on request."""

from __future__ import annotations

import re
from decimal import Decimal

import numpy as np

from pipeline.manifest.reading import lines

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def label_form(value):
    """A label as compared: single spaces, case folded ('Malignant  Mass' -> 'malignant mass')."""
    return " ".join(value.split()).casefold()


def number_form(value):
    """An id that is a number in its plain form ('1', '1.0', '01', '1e0' -> '1'; '1.50' -> '1.5');
    None for an id that is not a number (it is compared as written)."""
    if not _NUMBER.fullmatch(value):
        return None
    number = Decimal(value)
    if number.adjusted() > 30:                  # no 10**(10**9)-digit integers for '1e999999999'
        return str(number.normalize())
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def variants(values, form):
    """{normal form: {spelling: row positions}} for the forms that ``values`` (a Series of
    non-empty strings) write in more than one way; a form of None is never a variant."""
    by_form = {}
    for value in values.unique():
        normal = form(value)
        if normal is not None:
            by_form.setdefault(normal, []).append(value)
    cells = values.to_numpy()
    index = values.index.to_numpy()
    return {normal: {v: index[np.flatnonzero(cells == v)] for v in spellings}
            for normal, spellings in sorted(by_form.items()) if len(spellings) > 1}


def describe(spellings):
    """"'Benign' (line 5), 'benign' (lines 2, 3, 4, 6, 7, 8, … (40 rows))", in file order."""
    ordered = sorted(spellings.items(), key=lambda kv: kv[1][0])
    return ", ".join(f"{v!r} ({lines(rows)})" for v, rows in ordered)


def rewrite(values, found):
    """``values`` with every spelling in ``found`` (from ``variants``) replaced by its normal form."""
    mapping = {v: normal for normal, spellings in found.items() for v in spellings}
    return values.map(lambda v: mapping.get(v, v))
