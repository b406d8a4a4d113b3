"""Renders the report's plain data into one self-contained HTML page (autoescaped Jinja2).

SVG charts are built in ``plots`` with every label escaped, and are the only strings marked safe.
"""
from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parent / "templates"
SEARCH_PATH = [TEMPLATES]   # folders holding report.html.j2 and sections/<id>.html.j2, first match wins


def _fmt(value, digits=3):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pvalue(value):
    if value is None:
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _environment():
    # keep_trailing_newline: each section partial ends its last line, so sections stay apart in the source
    env = Environment(loader=FileSystemLoader([str(p) for p in SEARCH_PATH]), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["fmt"] = _fmt
    env.filters["pvalue"] = _pvalue
    env.filters["svg"] = lambda s: Markup(s) if s else ""
    env.filters["pretty"] = lambda obj: json.dumps(obj, indent=2, sort_keys=True, default=str)
    return env


def render_report(page):
    """page: {"title", "generated", "banner", "sections": [{"id", "title", "data"}]} as
    ``reports.build_page`` makes it; returns the HTML text. Each section renders through its own
    partial, sections/<id>.html.j2, which sees its data as ``data``."""
    return _environment().get_template("report.html.j2").render(**page)
