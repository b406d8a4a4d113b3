"""The `fuse` stage: join the cached embeddings with the clinical table, one row per case, and fix
the patient-wise held-out split and cross-validation folds. It fits nothing used downstream.

Reads: the manifest, <run>/features/<modality>/<backbone>.h5.
Writes: <run>/fused/design.h5 and design.json.
Config: label, clinical, patient_column, fuse, seed (and the modality/backbone lists).
"""

from __future__ import annotations

import json
import logging

import numpy as np

from features.design import assemble_design, block_name, indicator_name
from features.store import read_table
from models.diagnostics import pca_diagnostics
from models.errors import ModelsError
from models.splits import cv_folds, holdout_split, merged_groups
from pipeline import artifacts
from pipeline.design_store import Design, read_design, write_design
from pipeline.errors import ConfigError, StageInputError
from pipeline.fingerprint import hash_files, hash_json, library_versions
from pipeline.manifest import effective_labels

log = logging.getLogger(__name__)
STAGE_VERSION = 1


def _tables(study):
    tables, missing = {}, []
    for modality in study.modalities:
        for b in study.backbones:
            path = artifacts.features_file(study.run_dir, modality, b.name)
            table = read_table(path)
            if table is None:
                missing.append(str(path))
            else:
                tables[(modality, b.name)] = table
    if missing:
        raise StageInputError("Embeddings are missing for this study:", missing,
                              hint="Run `run_pipeline.py extract -c <study>` first (it resumes).")
    return tables


def _classes(study, labels):
    classes = sorted(set(labels) - {""})
    positive = study.config["label"]["positive"]
    if positive is not None and len(classes) == 2:
        classes = [c for c in classes if c != positive] + [positive]
    elif positive is not None and positive not in classes:
        raise ConfigError(f"label.positive '{positive}' is not among the classes {classes}")
    return classes, positive if len(classes) == 2 else None


def _exclusions(study, manifest, labels, tables):
    """(case_id, reason) for every case left out; nothing is dropped silently."""
    frame = manifest.frame
    out = []
    raw = frame[study.label_column]
    for case, original, new in zip(frame["case_id"], raw, labels):
        if new == "":
            out.append((case, f"label '{original}' is in label.drop"))
    if study.fuse["missing_modality"] == "drop":
        for modality in study.modalities.values():
            for case, cell in zip(frame["case_id"], frame[modality.path_column]):
                if cell == "":
                    out.append((case, f"no {modality.name} image (fuse.missing_modality: drop)"))
    no_image = np.ones(len(frame), bool)
    for modality in study.modalities.values():
        no_image &= (frame[modality.path_column] == "").to_numpy()
    if not study.clinical:
        out += [(c, "no image in any modality and no clinical columns") for c in frame["case_id"][no_image]]
    seen, unique = set(), []
    for case, reason in out:
        if case not in seen:
            seen.add(case)
            unique.append((case, reason))
    return unique


def _splits(study, y, patients, extra):
    fz = study.fuse
    try:
        train, test = holdout_split(y, patients, fz["test_size"], study.seed, extra)
        folds_train = cv_folds(y[train], patients[train], fz["n_folds"], fz["n_repeats"], study.seed,
                               None if extra is None else extra[train])
    except ModelsError as exc:
        raise ConfigError(f"Cannot split this study: {exc}",
                          hint="Lower fuse.n_folds or raise fuse.test_size, or add cases.") from None
    is_test = np.zeros(len(y), bool)
    is_test[test] = True
    folds = np.full((fz["n_repeats"], len(y)), -1, dtype=int)
    for r, rep in enumerate(folds_train):
        for k, (_, val) in enumerate(rep):
            folds[r, train[val]] = k
    return is_test, folds


def _fingerprint(study, manifest, tables):
    return hash_json({"stage": "fuse", "version": STAGE_VERSION,
                      "manifest": hash_files([manifest.path])[str(manifest.path)],
                      "features": {f"{m}/{b}": t.attrs.get("fingerprint") for (m, b), t in sorted(tables.items())},
                      "label": study.config["label"], "clinical": study.clinical,
                      "patient_column": study.patient_column, "fuse": study.fuse, "seed": study.seed})


def _summary(frame, y, classes, study, is_test, folds, excluded):
    counts = {c: int((y == c).sum()) for c in classes}
    missing_mod = {m: int(frame[indicator_name(m)].sum()) for m in study.modalities}
    missing_clin = {c: int(frame[c].isna().sum()) for c in study.clinical}
    fold_sizes = [[int((rep == k).sum()) for k in range(rep.max() + 1)] for rep in folds]
    return {"n_cases": int(len(y)), "class_counts": counts, "missing_modality": missing_mod,
            "missing_clinical": missing_clin, "n_train": int((~is_test).sum()), "n_test": int(is_test.sum()),
            "test_class_counts": {c: int(((y == c) & is_test).sum()) for c in classes},
            "fold_sizes": fold_sizes, "n_excluded": len(excluded)}


def run_fuse(study, manifest, force=False):
    """Build and save the design; return it (or the saved one when nothing changed)."""
    tables = _tables(study)
    fingerprint = _fingerprint(study, manifest, tables)
    json_path = artifacts.design_json(study.run_dir)
    if not force and json_path.is_file() and artifacts.design_file(study.run_dir).is_file():
        if json.loads(json_path.read_text()).get("fingerprint") == fingerprint:
            log.info("fuse: unchanged (fingerprint matches), nothing to do")
            return read_design(study.run_dir)
    frame = manifest.frame
    labels = effective_labels(study, frame[study.label_column])
    excluded = _exclusions(study, manifest, labels, tables)
    drop = {c for c, _ in excluded}
    keep = ~frame["case_id"].isin(drop).to_numpy()
    kept = frame[keep].reset_index(drop=True)
    y = labels[keep].to_numpy(dtype=object)
    classes, positive = _classes(study, y)
    design_frame, layout = assemble_design(kept["case_id"], kept, tables, study.clinical)
    patients = kept[study.patient_column].to_numpy(dtype=object)
    group_col = study.fuse["group_column"]
    extra = None
    if group_col:
        extra = kept[group_col].replace("", np.nan).to_numpy(dtype=object)
    is_test, folds = _splits(study, y, patients, extra)
    groups = merged_groups(patients, extra)
    meta = {"stage": "fuse", "stage_version": STAGE_VERSION, "study": study.config["study"],
            "fingerprint": fingerprint, "layout": layout, "classes": classes, "positive": positive,
            "label_column": study.label_column, "label_map": study.config["label"]["map"],
            "excluded": [{"case_id": c, "reason": r} for c, r in excluded],
            "summary": _summary(design_frame, y, classes, study, is_test, folds, excluded),
            "pca_diagnostics": pca_diagnostics(design_frame, layout, ~is_test),
            "blocks": {block_name(m, b): {"modality": m, "backbone": b,
                                          "weights": t.attrs.get("weights"),
                                          "weights_fallback": bool(t.attrs.get("weights_fallback")),
                                          "weights_identity": t.attrs.get("weights_identity"),
                                          "fingerprint": t.attrs.get("fingerprint")}
                       for (m, b), t in tables.items()},
            "config": {k: study.config[k] for k in ("label", "clinical", "patient_column", "fuse", "seed")},
            "group_column": group_col, "versions": library_versions()}
    design = Design(design_frame, y, groups, is_test, folds, meta)
    write_design(study.run_dir, design)
    s = meta["summary"]
    log.info("fuse: %d cases (%s), %d held out, %d excluded; %d columns in %d blocks + %d clinical",
             s["n_cases"], ", ".join(f"{k} {v}" for k, v in s["class_counts"].items()), s["n_test"],
             len(excluded), design_frame.shape[1], len(layout["blocks"]), len(layout["clinical"]))
    return design
