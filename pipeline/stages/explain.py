"""The `explain` stage: occlusion-sensitivity maps of the saved stack over the images of the held-out
cases the report explains (the SHAP section's rule, its first ``explain.cases``).

It re-embeds images with the run's own extractors, exactly as recorded in the run record (weights
as resolved, a random fallback included), so it is a stage of its own: `report` only reads its
output and never imports TensorFlow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from features.occlusion import FILLS
from pipeline import settings as s
from pipeline.contract import Artifact, Stage

log = logging.getLogger(__name__)
VERSION = 1
BASELINE_TOLERANCE = 0.01   # re-embedding the unoccluded image must give the stack's held-out probability


@dataclass(frozen=True)
class ExplainSettings:
    grid: int = s.setting(4, lambda v: s.is_int(v) and 2 <= v <= 16, "an integer from 2 to 16",
                          "occlusion patches per side (grid x grid re-embeddings per image)")
    cases: int = s.setting(4, lambda v: s.is_int(v) and 1 <= v <= 32, "an integer from 1 to 32",
                           "held-out cases mapped (the first of those the report's SHAP section explains)")
    fill: str = s.setting("mean", s.one_of(FILLS), "'mean' or 'blur'",
                          "what replaces a patch (the image mean, or a heavy blur of it)")


def _case_images(manifest, study, case_id):
    """(modality, view, image path, lesion or None) for each image the case has (every view)."""
    from pipeline.embedding_cache import lesion_of  # noqa: PLC0415
    from pipeline.image_index import image_rows  # noqa: PLC0415

    out = []
    for m in study.modalities.values():
        for case, path, lesion, _, view in image_rows(manifest, m):
            if case == case_id:
                out.append((m, view, path, lesion_of(lesion)))
    return out


def _view_pool(ctx, modality, view, case):
    """For a view pooled by mean/max: (block modality, a function pooling its re-embedding with the
    case's other views, as fuse pooled them); for a concatenated view or no views: (its block, None)."""
    import numpy as np  # noqa: PLC0415

    if not modality.views:
        return modality.name, None
    if modality.pool == "concat":
        return f"{modality.name}.{view}", None
    others = {}
    for b in ctx.study.backbones:
        table = ctx.inputs.read("extract:embeddings", modality=modality.name, backbone=b.name)
        others[b.name] = [table.embeddings[i] for i, (c, v) in enumerate(zip(table.case_ids, table.views or []))
                          if c == case and v != view]

    def pool(name, emb):
        rest = others[name]
        if not rest:
            return emb
        if modality.pool == "mean":
            return (emb + np.sum(rest, axis=0)) / (1 + len(rest))
        return np.maximum(emb, np.max(rest, axis=0))
    return modality.name, pool


def _embedders(ctx):
    """One embedder per backbone, built from the weights the run really used."""
    from features.backbones import build_embedder  # noqa: PLC0415
    from pipeline.embedding_cache import runtime_args  # noqa: PLC0415

    ex, record = ctx.study.extract, ctx.run_record
    return {b.name: (lambda b=b: build_embedder(b.name, record.weights_choice(b.name),
                                                record.weights(b.name)["input_size"], ex.batch_size,
                                                ex.mixed_precision, **runtime_args(ctx.study)))
            for b in ex.backbones}


def compute(ctx):
    import numpy as np  # noqa: PLC0415
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    from features.extraction import load_preprocessed  # noqa: PLC0415
    from features.occlusion import occlusion_map, occlusion_scorer, save_maps, thumbnail  # noqa: PLC0415
    from pipeline.progress import progress_bar  # noqa: PLC0415
    from reports.cases import MAX_MISTAKES, SHAP_CASES, complete_cases, explained_cases  # noqa: PLC0415

    opts = ctx.study.explain
    if not ctx.inputs.has_model("stack"):
        log.warning("explain: the fit saved no stack (fit.stack is off?): no occlusion maps to make")
        return {"maps": 0, "note": "no saved stack"}
    stack, info = ctx.inputs.model("stack")
    design, holdout = ctx.inputs.design(), ctx.inputs.read("fit:holdout_predictions")
    classes, columns = info["classes"], info["columns"]
    positive = info["positive"] if info["positive"] is not None else classes[-1]
    eligible = complete_cases(design.frame, info["layout"].get("indicators", []))
    chosen = explained_cases(holdout, classes, positive, eligible, max(SHAP_CASES, opts.cases),
                             MAX_MISTAKES).iloc[:opts.cases]
    images = {case: _case_images(ctx.manifest, ctx.study, case) for case in chosen.index}
    makers, embedders = _embedders(ctx), {}

    def predict(rows):
        with threadpool_limits(limits=1):
            return stack.predict_proba(rows)

    total = sum(len(items) for items in images.values()) * (opts.grid * opts.grid + 1)
    maps, arrays = [], {}
    with progress_bar(total, "explain (occlusion)", "img", ctx.show_progress) as advance:
        for case, items in images.items():
            rec = chosen.loc[case]
            k = classes.index(rec.output)
            for modality, view, path, mask_path in items:
                mine = {name: embedders.setdefault(name, make()) for name, make in makers.items()}
                block, pool = _view_pool(ctx, modality, view, case)
                blocks = {name: info["layout"]["blocks"][f"{block}/{name}"] for name in mine}
                gray, mask, _ = load_preprocessed(path, mask_path, modality.preprocess,
                                                  ctx.study.extract.allow_blank)
                score = occlusion_scorer(predict, design.frame.loc[[case], columns], blocks, mine, mask,
                                         modality.preprocess.resize_mode, ctx.study.extract.flip_tta, k, advance,
                                         pool)
                drops, reembedded = occlusion_map(gray, score, opts.grid, opts.fill)
                baseline = float(rec[f"proba:{rec.output}"])
                if abs(reembedded - baseline) > BASELINE_TOLERANCE:
                    log.warning("explain: %s/%s: re-embedding the image gives P(%s) = %.3f, the held-out "
                                "prediction was %.3f: the images or extraction settings changed since extract",
                                case, block, rec.output, reembedded, baseline)
                arrays[f"drops_{len(maps)}"] = drops
                arrays[f"image_{len(maps)}"] = thumbnail(gray)
                maps.append({"case_id": case, "modality": modality.name, **({"view": view} if view else {}),
                             "y_true": str(rec.y_true),
                             "predicted": str(rec.predicted), "output": str(rec.output), "baseline": baseline,
                             "reembedded": reembedded, "mistake": bool(rec.mistake), "backbones": list(mine)})
    fit_record = ctx.inputs.record("fit")
    meta = {"stage": "explain", "stage_version": VERSION, "fingerprint": ctx.fingerprint,
            "fit_fingerprint": fit_record.fingerprint, "design_fingerprint": design.meta["fingerprint"],
            "settings": {"grid": opts.grid, "cases": opts.cases, "fill": opts.fill},
            "cases": list(chosen.index), "maps": maps}
    save_maps(ctx.out.path("occlusion"), meta, {k: np.asarray(v) for k, v in arrays.items()})
    log.info("explain: %d occlusion map(s) of %d case(s)", len(maps), len(images))
    return {"maps": len(maps), "cases": list(chosen.index)}


STAGE = Stage(
    name="explain", version=VERSION, folder="explain", noun="occlusion maps",
    summary="occlusion maps of the stack over a few held-out cases' images",
    description="For the held-out cases the report's SHAP section explains (the first explain.cases of "
                "them), hide each patch of an explain.grid x grid over each image in turn, re-embed it with the "
                "run's own backbones, weights and preprocessing, and record how much the saved stack's "
                "probability drops. Writes <run>/explain/occlusion.npz, which report shows; unchanged inputs: "
                "nothing is redone. Needs the images and (for CNN backbones) TensorFlow.",
    config=("explain", "modalities", "extract", "seed"),
    reads=("fuse:design", "fuse:design_meta", "fit:model", "fit:model_info",
           "fit:holdout_predictions", "extract:embeddings"),
    writes=(Artifact("occlusion", "occlusion.npz", "maps, thumbnails and their record"),),
    compute=compute, settings=ExplainSettings, needs_manifest=True, needs_images=True,
    message=lambda o: (f"explain: {o.folder / 'occlusion.npz'}" if o.summary.get("maps")
                       else "explain: no saved stack, so no occlusion maps"),
)
