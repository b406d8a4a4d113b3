"""Occlusion sensitivity: hide one patch of an image at a time and measure how a score changes.

Pure array code (uint8 gray images in, arrays out); the caller supplies the scorer. The `explain`
stage's scorer re-embeds the images and asks the saved stack for a probability.
"""

from __future__ import annotations

import itertools

import numpy as np

FILLS = ("mean", "blur")


def patch_boxes(shape, grid):
    """Boxes ``(y0, y1, x0, x1)`` of a grid x grid tiling of an image, row by row."""
    height, width = shape[:2]
    if grid < 1 or grid > min(height, width):
        raise ValueError(f"Expected a grid between 1 and {min(height, width)} for an image of shape "
                         f"{shape[:2]}, got {grid}")
    ys = np.linspace(0, height, grid + 1).round().astype(int)
    xs = np.linspace(0, width, grid + 1).round().astype(int)
    return [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(grid) for j in range(grid)]


def iter_occluded(gray, grid, fill="mean"):
    """The image with each grid cell in turn replaced by the image mean or by a heavy blur of itself
    (one image at a time, so a full-resolution mammogram is never copied grid² times)."""
    if fill not in FILLS:
        raise ValueError(f"Expected fill to be one of {list(FILLS)}, got {fill!r}")
    import cv2  # noqa: PLC0415  (only where images are occluded: the settings check must stay light)

    gray = np.asarray(gray, np.uint8)
    boxes = patch_boxes(gray.shape, grid)
    if fill == "blur":
        sigma = max(gray.shape[:2]) / grid / 3
        source = cv2.GaussianBlur(gray, (0, 0), sigmaX=sigma)
    else:
        source = np.full_like(gray, int(round(float(gray.mean()))))
    for y0, y1, x0, x1 in boxes:
        out = gray.copy()
        out[y0:y1, x0:x1] = source[y0:y1, x0:x1]
        yield out


def occlusion_map(gray, score, grid, fill="mean"):
    """How much hiding each cell lowers the score: ``score(unoccluded) - score(occluded)``.

    score: an iterable of images -> one score per image (it may consume them lazily).
    Returns (drops of shape (grid, grid), the unoccluded score).
    """
    scores = np.asarray(score(itertools.chain([np.asarray(gray, np.uint8)], iter_occluded(gray, grid, fill))),
                        float)
    if scores.shape != (grid * grid + 1,):
        raise ValueError(f"Expected {grid * grid + 1} scores from the scorer, got shape {scores.shape}")
    return (scores[0] - scores[1:]).reshape(grid, grid), float(scores[0])


def thumbnail(gray, max_side=200):
    """A downsampled copy for display (area interpolation), never larger than the original."""
    import cv2  # noqa: PLC0415

    gray = np.asarray(gray, np.uint8)
    scale = max_side / max(gray.shape[:2])
    if scale >= 1:
        return gray.copy()
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def occlusion_scorer(predict_proba, design_row, block_columns, embedders, mask, resize_mode, flip_tta, k,
                     advance=None, pool=None):
    """images -> one class's probability with a modality's blocks re-embedded from each image.

    design_row: the case's one-row design frame; block_columns: backbone -> its columns there;
    embedders: backbone -> embedder; predict_proba: the saved model's (fitted elsewhere);
    pool: optional (backbone, embeddings of this view) -> the block's values, for a view pooled
    with the case's other views (their embeddings unchanged).
    """
    import pandas as pd  # noqa: PLC0415

    from features.extraction import embed_prepared, prepare_views  # noqa: PLC0415

    def score(images):
        prepared = {name: [] for name in embedders}
        for image in images:
            for name, embedder in embedders.items():
                prepared[name].append(prepare_views(embedder, image, mask, resize_mode, flip_tta))
            if advance:
                advance(1)
        n = len(next(iter(prepared.values())))
        rows = pd.concat([design_row] * n)
        for name, embedder in embedders.items():
            cols = block_columns[name]
            emb = embed_prepared(embedder, prepared[name])
            if pool is not None:
                emb = pool(name, emb)
            if emb.shape[1] != len(cols):
                raise ValueError(f"{name} gives {emb.shape[1]} values per image, the model expects {len(cols)}")
            rows[cols] = emb.astype(np.float64)
        return predict_proba(rows)[:, k]
    return score


def save_maps(path, meta, arrays):
    """Occlusion maps as one .npz: a JSON record plus drops_<i> and image_<i> arrays (no pickle)."""
    import json  # noqa: PLC0415

    with open(path, "wb") as fh:
        np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)


def load_maps(path):
    """(meta, maps): one dict per (case, modality) with its drops (grid x grid) and thumbnail."""
    import json  # noqa: PLC0415

    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        maps = [{**entry, "drops": f[f"drops_{i}"], "image": f[f"image_{i}"]} for i, entry in enumerate(meta["maps"])]
    return meta, maps
