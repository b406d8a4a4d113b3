"""Label hygiene: one spelling per class, and `label.positive` / `label.map` / `label.drop` naming
labels that exist. Labels equal after case folding and space collapsing are an error listing each
spelling with its lines, or (``label.normalise: true``) read in that folded form."""

from __future__ import annotations

import difflib
import logging

import numpy as np

from pipeline.manifest.reading import line, warn_padded
from pipeline.manifest.spelling import describe, label_form, variants

log = logging.getLogger(__name__)


def effective_labels(study, labels):
    """Labels after the study's `label.map` merges and `label.drop` exclusions ('' = dropped)."""
    mapping = {str(k): str(v) for k, v in study.label.map.items()}
    dropped = {str(d) for d in study.label.drop}
    return labels.map(lambda v: "" if v in dropped else mapping.get(v, v))


def quoted(names, limit=10):
    names = list(names)
    return ", ".join(repr(n) for n in names[:limit]) + (f", … ({len(names)} in all)" if len(names) > limit else "")


def did_you_mean(name, names):
    """'; did you mean 'benign'?' (same but for case and spaces first, then a close spelling), or ''."""
    folded = sorted(n for n in names if label_form(n) == label_form(name))
    close = folded or difflib.get_close_matches(name, sorted(names), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _as_read(study):
    return " (read in lower case: label.normalise is true)" if study.label.normalise else ""


def _spellings(frame, column, normalise, problems):
    labels = frame[column]
    found = variants(labels[labels != ""], label_form)
    if normalise:
        for normal, spellings in found.items():
            log.info("label.normalise: %s read as %r", describe(spellings), normal)
        frame[column] = labels.map(label_form)
        return
    for normal, spellings in found.items():
        problems.append(f"column '{column}': {describe(spellings)} are one label written {len(spellings)} "
                        f"ways (they differ only in case or spaces): write it one way, or set "
                        f"label.normalise: true to read every label in lower case ({normal!r})")


def _named_labels(study, present, problems):
    """`label.map` and `label.drop` name labels of the manifest (as read, after label.normalise)."""
    column = study.label_column
    for key, names in (("label.map", study.label.map), ("label.drop", study.label.drop)):
        for name in map(str, names):
            if name not in present:
                hint = did_you_mean(name, present) or f"; its labels are {quoted(sorted(present))}"
                problems.append(f"{key}: {name!r} is not a label in column '{column}'{_as_read(study)}{hint}")


def _positive(study, classes, problems):
    positive = study.label.positive
    if positive is None or not classes:
        return
    if positive not in classes:
        after = " (after label.map and label.drop)" if study.label.map or study.label.drop else ""
        problems.append(f"label.positive is {positive!r}, but column '{study.label_column}' has only "
                        f"{quoted(classes)}{after}{_as_read(study)}{did_you_mean(positive, classes)}")
    elif len(classes) > 2:
        log.warning("label.positive %r is used only when there are two classes; this study has %d (%s), "
                    "so it is ignored and metrics are macro one-vs-rest", positive, len(classes), quoted(classes))


def check_labels(frame, study, problems, padded):
    """Append every label problem; with ``label.normalise`` the label column is rewritten in place."""
    column = study.label_column
    warn_padded(column, padded)
    for i in np.flatnonzero((frame[column] == "").to_numpy()):
        problems.append(f"{line(i)}, column '{column}': empty label")
    _spellings(frame, column, study.label.normalise, problems)
    labels = frame[column]
    _named_labels(study, set(labels) - {""}, problems)
    effective = effective_labels(study, labels)
    classes = sorted(set(effective) - {""})
    if len(classes) < 2:
        found = f"only '{classes[0]}'" if classes else "none"
        problems.append(f"column '{column}': at least two classes are needed, found {found}")
    _positive(study, classes, problems)
