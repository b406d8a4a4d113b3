"""Typed, frozen config sections: one dataclass per section, each field with its check and its doc.

A section is declared once (its fields, defaults, checks, and which fields are result-neutral) and
built from the YAML mapping with every problem collected; the config module and the stage modules
that own a section use the same few helpers here. Result-neutral fields (``neutral=True``: thread
counts, batch sizes that cannot change a number) stay out of fingerprints.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib

MISSING = dataclasses.MISSING


class Lazy:
    """A default computed when a study is built, e.g. read from a registry whose import is costly
    (the learners): ``--help`` must not pay for it, and the list must not be copied."""

    def __init__(self, make):
        self.make = make


def setting(default, check=None, expected="", doc="", neutral=False):
    """A section field: its default, a check (value -> bool), what a valid value looks like, a line
    of documentation, and whether it can change a result."""
    meta = {"check": check, "expected": expected, "doc": doc, "neutral": neutral}
    if isinstance(default, Lazy):
        return dataclasses.field(default_factory=default.make, metadata=meta)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def unknown_key(key, known, where, errors, moved=None):
    """'where.key: unknown key; did you mean ...?' (or where it moved to)."""
    if moved and key in moved:
        errors.append(f"{where}{key}: this key moved to '{moved[key]}'")
        return
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
    errors.append(f"{where}{key}: unknown key{hint}")


def build_section(cls, mapping, where, errors, moved=None, **derived):
    """An instance of section ``cls`` from a YAML mapping: unknown keys and failed checks are added
    to ``errors`` (naming ``where`` + key); bad values fall back to the default so that checking
    can go on. ``derived`` supplies fields that are validated elsewhere (e.g. backbone lists)."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        errors.append(f"{where.rstrip('.')}: expected a mapping, got {type(mapping).__name__}")
        mapping = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in mapping.items():
        if key not in fields:
            unknown_key(key, fields, where, errors, moved)
            continue
        if key in derived:
            continue
        check = fields[key].metadata.get("check")
        if check is not None and not check(value):
            errors.append(f"{where}{key}: expected {fields[key].metadata['expected']}, got {value!r}")
            continue
        values[key] = value
    values.update(derived)
    return cls(**values)


def as_dict(section, neutral=True):
    """A section as plain JSON-able values; ``neutral=False`` leaves out result-neutral fields."""
    out = {}
    for f in dataclasses.fields(section):
        if not neutral and f.metadata.get("neutral"):
            continue
        value = getattr(section, f.name)
        out[f.name] = value.to_dict() if hasattr(value, "to_dict") else _plain(value)
    return out


def _plain(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def describe(cls):
    """(field, default, doc) rows of a section, for --help texts and docs."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()
        rows.append((f.name, default, f.metadata.get("doc", "")))
    return rows


# --- checks shared by the sections -------------------------------------------------------------

def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def pos_int(v):
    return is_int(v) and v > 0


def non_neg_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def text(v):
    return isinstance(v, str) and v.strip() != ""


def opt_text(v):
    return v is None or text(v)


def boolean(v):
    return isinstance(v, bool)


def fraction(v):
    return isinstance(v, float) and 0 < v < 1


def text_list(v):
    return isinstance(v, list) and all(text(x) for x in v)


def one_of(choices):
    return lambda v: v in choices
