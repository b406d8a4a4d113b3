"""Importers: official public-dataset layouts (and plain folders or tables) to a manifest + study file.

The registry maps each `run_pipeline.py import` format to its function ``f(source, options)``,
which returns an ``ImportResult``; ``run_import`` writes it. Adding a format is one entry.
"""

from __future__ import annotations

from pipeline.importers.busi import import_busi
from pipeline.importers.cbis_ddsm import import_cbis_ddsm
from pipeline.importers.common import Options, write_import
from pipeline.importers.csv_join import import_csv
from pipeline.importers.folder import import_folder
from pipeline.importers.mini_ddsm import import_mini_ddsm
from pipeline.importers.mini_mias import import_mini_mias

IMPORTERS = {
    "busi": import_busi,
    "mini-mias": import_mini_mias,
    "mini-ddsm": import_mini_ddsm,
    "cbis-ddsm": import_cbis_ddsm,
    "folder": import_folder,
    "csv": import_csv,
}


def run_import(fmt, source, out, options=None):
    """Import ``source`` in format ``fmt`` into ``out``; return the summary lines to print."""
    result = IMPORTERS[fmt](source, options or Options())
    return write_import(result, out)
