"""The cases fuse will use, and whether every class has enough patients for its split plan (the
held-out share `fuse.test_size`, then `fuse.n_folds` folds of the rest): checked before extract,
with settings that work, so that a too-small class is not found only after embedding every image.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.config import yaml_text
from pipeline.manifest.labels import effective_labels
from pipeline.manifest.reading import CASE_ID


def exclusions(study, frame, labels):
    """(case_id, reason) for every case fuse leaves out; nothing is dropped silently."""
    out = []
    for case, original, new in zip(frame[CASE_ID], frame[study.label_column], labels):
        if new == "":
            out.append((case, f"label '{original}' is in label.drop"))
    if study.fuse.missing_modality == "drop":
        for modality in study.modalities.values():
            for case, has in zip(frame[CASE_ID], modality.has_image(frame)):
                if not has:
                    out.append((case, f"no {modality.name} image (fuse.missing_modality: drop)"))
    from pipeline.manifest.roi import rows_without_roi  # noqa: PLC0415

    for modality in study.modalities.values():
        for src in modality.sources:
            if src.roi and src.roi.get("missing") == "exclude":
                lacking = rows_without_roi(src.roi, frame, src.path_column)
                out += [(case, f"no lesion ROI for its {modality.name} image in '{src.path_column}' "
                               f"(roi.missing: exclude)") for case in frame[CASE_ID][lacking]]
    no_image = np.ones(len(frame), bool)
    for modality in study.modalities.values():
        no_image &= ~modality.has_image(frame)
    if not study.clinical:
        out += [(c, "no image in any modality and no clinical columns") for c in frame[CASE_ID][no_image]]
    first = {}
    for case, reason in out:
        first.setdefault(case, reason)
    return list(first.items())


def _groups_per_class(study, frame):
    """{class: patient groups holding it}, over the cases fuse keeps (groups merged as fuse does)."""
    from models.splits import merged_groups  # noqa: PLC0415  (scikit-learn only when a split is planned)

    labels = effective_labels(study, frame[study.label_column])
    left_out = {c for c, _ in exclusions(study, frame, labels)}
    keep = ((labels != "") & ~frame[CASE_ID].isin(left_out)).to_numpy()
    column = study.fuse.group_column
    extra = frame.loc[keep, column].replace("", np.nan).to_numpy(dtype=object) if column else None
    groups = merged_groups(frame.loc[keep, study.patient_column].to_numpy(dtype=object), extra)
    y = labels[keep].to_numpy(dtype=object)
    return {c: len(np.unique(groups[y == c])) for c in sorted(set(y))}


MIN_PATIENTS = 3        # one held out (test_size 1/3) and two left for the smallest cross-validation


def _parts(test_size):
    return max(2, int(round(1 / test_size)))


def _training(k, parts):
    """Patient groups of a class left for training: the held-out part takes up to ceil(k / parts)."""
    return k - math.ceil(k / parts)


def _split_advice(counts, fuse):
    """The fuse settings that give every class (of at least MIN_PATIENTS patients) a held-out
    patient and at least two training ones per fold."""
    counts = [k for k in counts.values() if k >= MIN_PATIENTS]
    if not counts:
        return None
    test_size = fuse.test_size
    folds = min(_training(k, _parts(test_size)) for k in counts)
    if min(counts) < _parts(test_size) or folds < 2:
        test_size = math.ceil(100 / min(counts)) / 100      # one patient of the smallest class held out
        folds = min(_training(k, _parts(test_size)) for k in counts)
    keys = ([f"fuse.test_size: {test_size}"] if test_size != fuse.test_size else []) + \
           ([f"fuse.n_folds: {folds}"] if folds < fuse.n_folds else [])
    return "set " + " and ".join(keys) if keys and folds >= 2 else None


def _label_advice(study, cls, counts, labels):
    """Drop the class, or merge it into the largest other one (in the label names the file uses)."""
    if len(counts) < 3:
        return []
    written = pd.Series(sorted(set(labels) - {""}), dtype=object)
    sources = written[(effective_labels(study, written) == cls).to_numpy()].tolist()
    drop = list(dict.fromkeys([*map(str, study.label.drop), *sources]))
    other = max((c for c in counts if c != cls), key=lambda c: (counts[c], c))
    mapping = {**{str(k): str(v) for k, v in study.label.map.items()}, **{s: other for s in sources}}
    return [f"label.drop: {yaml_text(drop)}", f"merge it into another class with label.map: {yaml_text(mapping)}"]


def split_problems(study, frame):
    """A problem for every class with too few patient groups for the split plan, with the settings
    (every one a key the study file accepts) that would make it possible."""
    counts = _groups_per_class(study, frame)
    if len(counts) < 2:
        return []                               # fewer than two classes is reported by the label check
    fuse, parts = study.fuse, _parts(study.fuse.test_size)
    unit = "patient group(s) (patients tied by fuse.group_column merged)" if fuse.group_column else "patient(s)"
    split = _split_advice(counts, fuse)
    out = []
    for cls, k in counts.items():
        held, train = math.ceil(k / parts), _training(k, parts)
        if k < parts:
            why = (f"fuse.test_size: {fuse.test_size} holds out 1 in {parts} patients of every class, "
                   f"which needs at least {parts}")
        elif train < fuse.n_folds:
            why = (f"the held-out split (fuse.test_size: {fuse.test_size}) takes up to {held}, leaving {train} "
                   f"for training, and fuse.n_folds: {fuse.n_folds} needs at least {fuse.n_folds} there")
        else:
            continue
        advice = ([split] if split and k >= MIN_PATIENTS else []) + \
            _label_advice(study, cls, counts, frame[study.label_column])
        advice = advice or [f"add cases of class {cls!r} (no fuse.test_size and fuse.n_folds can hold out "
                            f"and cross-validate fewer than {MIN_PATIENTS} patients)"]
        out.append(f"class {cls!r} has {k} {unit}; {why}: " + ", or ".join(advice))
    return out
