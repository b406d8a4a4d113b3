"""Id hygiene: unique case ids, and patient (or fuse.group_column) ids that are one number written
differently — a spreadsheet's 1, 1.0 and 01 — are an error (three patients in three folds is
leakage), or one id with ``patient_id_normalise: true``. Ids are text: never read as floats."""

from __future__ import annotations

import logging

import numpy as np

from pipeline.manifest.reading import CASE_ID, line, lines, warn_padded
from pipeline.manifest.spelling import describe, number_form, rewrite, variants

log = logging.getLogger(__name__)


def check_case_ids(frame, problems):
    ids = frame[CASE_ID]
    for i in np.flatnonzero(ids == ""):
        problems.append(f"{line(i)}, column '{CASE_ID}': empty case id")
    dup = ids[(ids != "") & ids.duplicated(keep=False)]
    for case, rows in dup.groupby(dup).groups.items():
        problems.append(f"column '{CASE_ID}': '{case}' appears more than once ({lines(rows)})")


def check_grouping_ids(frame, column, noun, normalise, problems, padded):
    """Ids in ``column`` (patients, or an extra grouping) that are one number written several ways:
    a problem each, or rewritten to the number's plain form when ``normalise``."""
    warn_padded(column, padded)
    ids = frame[column]
    found = variants(ids[ids != ""], number_form)
    if normalise:
        for number, spellings in found.items():
            log.info("patient_id_normalise: column '%s': %s read as one %s, %r",
                     column, describe(spellings), noun, number)
        frame[column] = rewrite(ids, found)
        return
    for number, spellings in found.items():
        problems.append(f"column '{column}': {describe(spellings)} are the number {number} written "
                        f"{len(spellings)} ways, so they would be {len(spellings)} {noun}s, possibly in "
                        f"different folds: write each {noun} one way, or set patient_id_normalise: true "
                        f"to read them as one {noun}, {number!r}")
