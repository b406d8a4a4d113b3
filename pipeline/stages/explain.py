"""The `explain` stage: occlusion-sensitivity maps of the saved stack over the images of the held-out
cases the report explains (the SHAP section's rule, its first ``report.occlusion_cases``).

Reads: <run>/models/study.json (the run's modalities, preprocessing, backbones and the weights really
       used), stack.joblib + stack.json, holdout_predictions.csv, metrics.json, <run>/fused/design.h5 +
       design.json, <run>/features/<modality>/<backbone>.h5 (attributes only), and the chosen cases'
       images from the manifest.
Writes: <run>/reports/occlusion.npz (maps, thumbnails and a JSON record with the fingerprint).
Config: report.occlusion_grid, report.occlusion_cases, report.occlusion_fill.
It re-embeds images (TensorFlow for CNN backbones), so it is a stage of its own: `report` only reads
its output and never imports TensorFlow.
"""

from __future__ import annotations

import json
import logging
import os

import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from features.backbones import build_embedder, default_input_size, resolve_weights
from features.extraction import embed_prepared, prepare_views
from features.imageio import read_gray, read_mask
from features.occlusion import occlusion_map, thumbnail
from features.preprocess import preprocess
from features.store import read_table
from pipeline import artifacts
from pipeline.design_store import read_design
from pipeline.errors import StageInputError
from pipeline.fingerprint import hash_files, hash_json
from pipeline.progress import progress_bar
from pipeline.stages.predict import recorded_study
from reports.cases import MAX_MISTAKES, SHAP_CASES, complete_cases, explained_cases

log = logging.getLogger(__name__)
STAGE_VERSION = 1
BASELINE_TOLERANCE = 0.01   # re-embedding the unoccluded image must give the stack's held-out probability


def _read_inputs(run_dir):
    folder = artifacts.models_dir(run_dir)
    needed = [artifacts.metrics_json(run_dir), folder / "holdout_predictions.csv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise StageInputError(f"explain: the fit stage's outputs are missing: {', '.join(missing)}",
                              hint="Run `run_pipeline.py fit -c <study>` first.")
    metrics = json.loads(needed[0].read_text())
    return metrics, pd.read_csv(needed[1], dtype={"case_id": str})


def settings(study):
    report = study.config["report"]
    return {"grid": report["occlusion_grid"], "cases": report["occlusion_cases"], "fill": report["occlusion_fill"]}


def _extractors(run_dir, recorded):
    """(backbone, resolved weights, input size) as the run made its embeddings; refuses a mismatch."""
    out = []
    for b in recorded.backbones:
        choice = resolve_weights(b.name, b.weights, recorded.seed)
        size = b.input_size or default_input_size(b.name)
        for modality in recorded.modalities:
            table = read_table(artifacts.features_file(run_dir, modality, b.name))
            if table is None:
                continue
            if table.attrs.get("weights_identity") != choice.identity:
                raise StageInputError(f"explain: {modality}/{b.name} was embedded with weights "
                                      f"{table.attrs.get('weights_identity')}, not {choice.identity}",
                                      hint="Run extract, fuse and fit again so the run is consistent.")
            size = int(table.attrs.get("input_size"))
        out.append((b.name, choice, size))
    return out


def _case_images(manifest, recorded, case_id):
    """(modality, image path, mask path or None) for each modality the case has."""
    row = manifest.frame.set_index("case_id").loc[case_id]
    out = []
    for m in recorded.modalities.values():
        cell = row.get(m.path_column, "")
        if isinstance(cell, str) and cell:
            mask = row.get(m.mask_column, "") if m.mask_column else ""
            out.append((m, manifest.resolve(cell), manifest.resolve(mask) if mask else None))
    return out


def _scorer(stack, design_row, block_columns, embedders, modality, mask, k, ex, advance):
    """images -> the stack's probability of class k with this modality's blocks re-embedded."""
    def score(images):
        prepared = {name: [] for name in embedders}
        for image in images:
            for name, embedder in embedders.items():
                prepared[name].append(prepare_views(embedder, image, mask, modality.preprocess.resize_mode,
                                                    ex["flip_tta"]))
            advance(1)
        n = len(next(iter(prepared.values())))
        rows = pd.concat([design_row] * n)
        for name, embedder in embedders.items():
            cols = block_columns[name]
            emb = embed_prepared(embedder, prepared[name])
            if emb.shape[1] != len(cols):
                raise StageInputError(f"explain: {modality.name}/{name} gives {emb.shape[1]} values per image, "
                                      f"the saved stack expects {len(cols)}")
            rows[cols] = emb.astype(np.float64)
        with threadpool_limits(limits=1):
            return stack.predict_proba(rows)[:, k]
    return score


def _write_npz(path, meta, arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_occlusion(run_dir):
    """(meta, maps) from <run>/reports/occlusion.npz, or None when absent. maps: one dict per
    (case, modality) with its drops (grid x grid) and a thumbnail of the preprocessed image."""
    path = artifacts.occlusion_file(run_dir)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        maps = [{**entry, "drops": f[f"drops_{i}"], "image": f[f"image_{i}"]}
                for i, entry in enumerate(meta["maps"])]
    return meta, maps


def run_explain(study, manifest, force=False, show_progress=True):
    """Compute the occlusion maps (unless unchanged); return the file's path, or None without a stack."""
    run_dir = study.run_dir
    folder = artifacts.models_dir(run_dir)
    if not (folder / "stack.joblib").is_file():
        log.warning("explain: no saved stack in %s (fit.stack is off?): no occlusion maps to make", folder)
        return None
    metrics, holdout = _read_inputs(run_dir)
    design = read_design(run_dir)
    info = json.loads((folder / "stack.json").read_text())
    classes, columns = info["classes"], info["columns"]
    positive = info["positive"] if info["positive"] is not None else classes[-1]
    opts = settings(study)
    eligible = complete_cases(design.frame, info["layout"].get("indicators", []))
    chosen = explained_cases(holdout, classes, positive, eligible, max(SHAP_CASES, opts["cases"]),
                             MAX_MISTAKES).iloc[:opts["cases"]]
    recorded = recorded_study(run_dir)
    extractors = _extractors(run_dir, recorded)
    images = {case: _case_images(manifest, recorded, case) for case in chosen.index}
    paths = [p for items in images.values() for _, img, mask in items for p in (img, mask) if p]
    fingerprint = hash_json({
        "stage": "explain", "version": STAGE_VERSION, "fit": metrics["fingerprint"],
        "design": design.meta["fingerprint"], "settings": opts, "cases": list(chosen.index),
        "images": hash_files(paths), "flip_tta": recorded.extract["flip_tta"],
        "extractors": [(n, c.identity, s) for n, c, s in extractors],
        "preprocess": {m.name: m.preprocess.to_dict() for m in recorded.modalities.values()}})
    out = artifacts.occlusion_file(run_dir)
    if not force and out.is_file():
        with np.load(out, allow_pickle=False) as f:
            if json.loads(str(f["meta"])).get("fingerprint") == fingerprint:
                log.info("explain: unchanged (fingerprint matches), nothing to do")
                return out
    stack = joblib.load(folder / "stack.joblib")
    ex = recorded.extract
    embedders = {}
    grid = opts["grid"]
    total = sum(len(items) for items in images.values()) * (grid * grid + 1)
    maps, arrays = [], {}
    with progress_bar(total, "explain (occlusion)", "img", show_progress) as advance:
        for case, items in images.items():
            rec = chosen.loc[case]
            k = classes.index(rec.output)
            for modality, path, mask_path in items:
                mine = {}
                for name, choice, size in extractors:
                    if name not in embedders:
                        embedders[name] = build_embedder(name, choice, size, ex["batch_size"], ex["mixed_precision"])
                    mine[name] = embedders[name]
                blocks = {name: info["layout"]["blocks"][f"{modality.name}/{name}"] for name in mine}
                gray = read_gray(path)
                mask = read_mask(mask_path, gray.shape) if mask_path else None
                gray, mask = preprocess(gray, modality.preprocess, mask)
                score = _scorer(stack, design.frame.loc[[case], columns], blocks, mine, modality, mask, k, ex,
                                advance)
                drops, reembedded = occlusion_map(gray, score, grid, opts["fill"])
                baseline = float(rec[f"proba:{rec.output}"])
                if abs(reembedded - baseline) > BASELINE_TOLERANCE:
                    log.warning("explain: %s/%s: re-embedding the image gives P(%s) = %.3f, the held-out "
                                "prediction was %.3f: the images or extraction settings changed since extract",
                                case, modality.name, rec.output, reembedded, baseline)
                arrays[f"drops_{len(maps)}"] = drops
                arrays[f"image_{len(maps)}"] = thumbnail(gray)
                maps.append({"case_id": case, "modality": modality.name, "y_true": str(rec.y_true),
                             "predicted": str(rec.predicted), "output": str(rec.output), "baseline": baseline,
                             "reembedded": reembedded, "mistake": bool(rec.mistake),
                             "backbones": list(mine)})
    meta = {"stage": "explain", "stage_version": STAGE_VERSION, "fingerprint": fingerprint,
            "fit_fingerprint": metrics["fingerprint"], "design_fingerprint": design.meta["fingerprint"],
            "settings": opts, "cases": list(chosen.index), "maps": maps}
    _write_npz(out, meta, arrays)
    log.info("explain: %d occlusion map(s) of %d case(s) written to %s", len(maps), len(images), out)
    return out
