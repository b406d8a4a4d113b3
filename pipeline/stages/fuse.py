"""The `fuse` stage: join the cached embeddings with the clinical table, one row per case, and fix
the patient-wise held-out split and cross-validation folds. It fits nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline import settings as s
from pipeline.contract import Artifact, Stage

log = logging.getLogger(__name__)
VERSION = 2   # 2: identifier-like categorical clinical columns refused, constant ones dropped
MISSING_MODALITY = ("impute", "drop")


@dataclass(frozen=True)
class FuseSettings:
    missing_modality: str = s.setting("impute", s.one_of(MISSING_MODALITY), "'impute' or 'drop'",
                                      "cases lacking a modality: impute per fold (with an indicator) or drop")
    test_size: float = s.setting(0.2, lambda v: s.fraction(v) and v <= 0.5, "a fraction in (0, 0.5]",
                                 "held-out share of patients")
    n_folds: int = s.setting(5, lambda v: s.is_int(v) and v >= 2, "an integer >= 2", "cross-validation folds")
    n_repeats: int = s.setting(1, s.pos_int, "a positive integer", "repeated cross-validation")
    group_column: str | None = s.setting(None, s.opt_text, "a column name or null",
                                         "extra grouping kept within one fold (e.g. near-duplicate groups)")


def external(session):
    manifest = session.manifest
    return {"manifest": {"sha256": session.hashes.sha256(manifest.path), "rows": int(len(manifest.frame))}}


def explain_external(old, new, session):
    was, now = old.get("manifest", {}), new.get("manifest", {})
    if was.get("rows") != now.get("rows"):
        return [f"it was built from another manifest ({was.get('rows')} rows, now {now.get('rows')})"]
    return [f"it was built from another manifest (same {now.get('rows')} rows, other content)"]


def _classes(study, labels):
    from pipeline.errors import ConfigError  # noqa: PLC0415

    classes = sorted(set(labels) - {""})
    positive = study.label.positive
    if positive is not None and len(classes) == 2:
        classes = [c for c in classes if c != positive] + [positive]
    elif positive is not None and positive not in classes:
        raise ConfigError(f"label.positive '{positive}' is not among the classes {classes}")
    return classes, positive if len(classes) == 2 else None


def _splits(study, y, patients, extra):
    import numpy as np  # noqa: PLC0415

    from models.errors import ModelsError  # noqa: PLC0415
    from models.splits import cv_folds, holdout_split  # noqa: PLC0415
    from pipeline.errors import ConfigError  # noqa: PLC0415

    fz = study.fuse
    try:
        train, test = holdout_split(y, patients, fz.test_size, study.seed, extra)
        folds_train = cv_folds(y[train], patients[train], fz.n_folds, fz.n_repeats, study.seed,
                               None if extra is None else extra[train])
    except ModelsError as exc:
        raise ConfigError(f"Cannot split this study: {exc}",
                          hint="Lower fuse.n_folds or raise fuse.test_size, or add cases.") from None
    is_test = np.zeros(len(y), bool)
    is_test[test] = True
    folds = np.full((fz.n_repeats, len(y)), -1, dtype=int)
    for r, rep in enumerate(folds_train):
        for k, (_, val) in enumerate(rep):
            folds[r, train[val]] = k
    return is_test, folds


def _screen_clinical(study, kept):
    """The clinical types the design keeps, and {column: reason} for constant columns dropped.
    A categorical column that holds boxes or an identifier cannot be one: a ConfigError names each."""
    from features.columns import column_issue  # noqa: PLC0415
    from pipeline.errors import ConfigError  # noqa: PLC0415

    types, dropped, refused = {}, {}, []
    for column, kind in study.clinical.items():
        issue = column_issue(kept[column], kind)
        if issue is None:
            types[column] = kind
        elif issue[0] == "constant":
            dropped[column] = issue[1]
            log.info("fuse: clinical column '%s' left out of the design: %s", column, issue[1])
        else:
            refused.append(f"clinical column '{column}' (declared {kind}): {issue[1]}")
    if refused:
        raise ConfigError(f"{len(refused)} clinical column(s) cannot be categories:", refused,
                          hint="Remove them from `clinical:` in the study file (they stay in the manifest). "
                               "One-hot encoding a column with about one value per case learns nothing and "
                               "meets unseen categories in every fold.")
    return types, dropped


def _summary(frame, y, classes, study, is_test, folds, excluded, clinical, dropped):
    from features.design import indicator_name  # noqa: PLC0415

    counts = {c: int((y == c).sum()) for c in classes}
    missing_mod = {m: int(frame[indicator_name(m)].sum()) for mod in study.modalities.values()
                   for m in mod.block_modalities()}
    missing_clin = {c: int(frame[c].isna().sum()) for c in clinical}
    fold_sizes = [[int((rep == k).sum()) for k in range(rep.max() + 1)] for rep in folds]
    return {"n_cases": int(len(y)), "class_counts": counts, "missing_modality": missing_mod,
            "missing_clinical": missing_clin, "n_train": int((~is_test).sum()), "n_test": int(is_test.sum()),
            "test_class_counts": {c: int(((y == c) & is_test).sum()) for c in classes},
            "fold_sizes": fold_sizes, "n_excluded": len(excluded), "dropped_clinical": dropped}


def compute(ctx):
    import numpy as np  # noqa: PLC0415

    from features.design import assemble_design, block_name  # noqa: PLC0415
    from models.splits import merged_groups  # noqa: PLC0415
    from pipeline.design_store import Design, write_design_files  # noqa: PLC0415
    from pipeline.fingerprint import library_versions  # noqa: PLC0415
    from pipeline.manifest import effective_labels, exclusions  # noqa: PLC0415

    study, manifest = ctx.study, ctx.manifest
    from pipeline.modalities import design_tables  # noqa: PLC0415

    tables = design_tables(study.modalities, {
        (m, b.name): ctx.inputs.read("extract:embeddings", modality=m, backbone=b.name)
        for m in study.modalities for b in study.backbones})
    frame = manifest.frame
    labels = effective_labels(study, frame[study.label_column])
    excluded = exclusions(study, frame, labels)
    keep = ~frame["case_id"].isin({c for c, _ in excluded}).to_numpy()
    kept = frame[keep].reset_index(drop=True)
    y = labels[keep].to_numpy(dtype=object)
    classes, positive = _classes(study, y)
    clinical, dropped = _screen_clinical(study, kept)
    design_frame, layout = assemble_design(kept["case_id"], kept, tables, clinical)
    patients = kept[study.patient_column].to_numpy(dtype=object)
    group_col = study.fuse.group_column
    extra = kept[group_col].replace("", np.nan).to_numpy(dtype=object) if group_col else None
    is_test, folds = _splits(study, y, patients, extra)
    summary = _summary(design_frame, y, classes, study, is_test, folds, excluded, clinical, dropped)
    meta = {"stage": "fuse", "stage_version": VERSION, "study": study.name, "fingerprint": ctx.fingerprint,
            "layout": layout, "classes": classes, "positive": positive, "label_column": study.label_column,
            "label_map": dict(study.label.map), "excluded": [{"case_id": c, "reason": r} for c, r in excluded],
            "excluded_columns": [{"column": c, "reason": r} for c, r in dropped.items()],
            "summary": summary,
            "blocks": {block_name(m, b): {"modality": m, "backbone": b, "weights": t.attrs.get("weights"),
                                          "weights_fallback": bool(t.attrs.get("weights_fallback")),
                                          "weights_identity": t.attrs.get("weights_identity"),
                                          "fingerprint": t.attrs.get("fingerprint")}
                       for (m, b), t in tables.items()},
            "config": study.config_of(STAGE.config), "group_column": group_col, "versions": library_versions()}
    design = Design(design_frame, y, merged_groups(patients, extra), is_test, folds, meta)
    write_design_files(ctx.out.path("design"), ctx.out.path("design_meta"), design)
    log.info("fuse: %d cases (%s), %d held out, %d excluded; %d columns in %d blocks + %d clinical",
             summary["n_cases"], ", ".join(f"{k} {v}" for k, v in summary["class_counts"].items()),
             summary["n_test"], len(excluded), design_frame.shape[1], len(layout["blocks"]), len(layout["clinical"]))
    return {k: summary[k] for k in ("n_cases", "n_train", "n_test", "n_excluded", "class_counts",
                                    "dropped_clinical")}


STAGE = Stage(
    name="fuse", version=VERSION, folder="fused", noun="fused design",
    summary="join embeddings and clinical data; fix patient-wise split and folds",
    description="Join the cached embeddings of every (modality, backbone) with the clinical table into one "
                "design (one row per case), and record the patient-wise held-out split and CV folds in "
                "<run>/fused/. Fits nothing.",
    config=("modalities", "extract", "label", "clinical", "patient_column", "patient_id_normalise", "fuse", "seed"),
    reads=("extract:embeddings",),
    writes=(Artifact("design", "design.h5", "design matrix, labels, groups, split and folds"),
            Artifact("design_meta", "design.json", "block layout, classes, exclusions, summary")),
    compute=compute, external=external, explain_external=explain_external, settings=FuseSettings,
    message=lambda o: (f"fuse: {o.summary['n_cases']} cases, {o.summary['n_train']} training / "
                       f"{o.summary['n_test']} held out, {o.summary['n_excluded']} excluded; design in {o.folder}"
                       + "".join(f"\n  note: clinical column '{c}' left out: {r}"
                                 for c, r in o.summary.get("dropped_clinical", {}).items())),
    needs_manifest=True, needs_split=True,
)
