"""Do Lite0's packaged ImageNet weights help on BUSI? Benign vs malignant, pretrained vs random.

    python bench/torch_lite0_busi.py [--roi whole|lesion|both] [--limit N]

Embeds BUSI's benign and malignant images (whole image, or the lesion's mask box plus 20% context)
with torch:efficientnet_lite0, ImageNet weights and seeded random ones, and prints the 5-fold AUC
of a standardised logistic regression on each, folds grouped by dup_group (BUSI has no patient
ids; near-duplicates share a fold). A quick check of the weights, not a result of the pipeline
(no CLAHE, no PCA, no held-out split). Then Lite0's CPU forward rate at batch 16.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUSI = REPO.parent / "shared" / "data" / "busi"
sys.path.insert(0, str(REPO))

LITE0 = "torch:efficientnet_lite0"


def load(roi, limit):
    """Gray uint8 images (whole or lesion box), labels (1 = malignant) and fold groups."""
    import pandas as pd  # noqa: PLC0415

    from features.imageio import read_gray, read_mask  # noqa: PLC0415
    from features.preprocess import mask_bbox  # noqa: PLC0415

    frame = pd.read_csv(BUSI / "manifest.csv", dtype=str, keep_default_na=False)
    frame = frame[frame.label.isin(["benign", "malignant"])]
    if limit:
        frame = frame.sample(n=limit, random_state=0)
    images = []
    for row in frame.itertuples():
        gray = read_gray(BUSI / row.ultrasound_path)
        if roi == "lesion":
            box = mask_bbox(read_mask(BUSI / row.mask_path, gray.shape), 0.2)
            if box is not None:
                gray = gray[box[0]:box[1], box[2]:box[3]]
        images.append(gray)
    groups = frame.dup_group.where(frame.dup_group != "", frame.case_id).to_numpy()
    return images, (frame.label == "malignant").to_numpy().astype(int), groups


def embed(images, weights, batch_size=16):
    from features.backbones import build_embedder, resolve_weights  # noqa: PLC0415

    embedder = build_embedder(LITE0, resolve_weights(LITE0, weights, 0), batch_size=batch_size)
    out = [embedder.embed(np.stack([embedder.prepare(g) for g in images[i:i + 64]]))
           for i in range(0, len(images), 64)]
    return np.concatenate(out), embedder


def cv_auc(x, y, groups, seed=0):
    """Per-fold ROC AUCs of StandardScaler + LogisticRegression, 5 folds grouped by duplicate group."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415
    from sklearn.model_selection import StratifiedGroupKFold  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    aucs = []
    for train, test in StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(x, y, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=5000))
        model.fit(x[train], y[train])
        aucs.append(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1]))
    return np.array(aucs)


def throughput(embedder, batch_size=16, batches=4, repeats=3):
    """Images/s of embed() alone (prepared tensors, no decoding) per repeat, after a warm-up batch."""
    x = np.random.default_rng(0).standard_normal((batch_size * batches, 3, 224, 224)).astype(np.float32)
    embedder.embed(x[:batch_size])
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        embedder.embed(x)
        rates.append(len(x) / (time.perf_counter() - start))
    return np.array(rates)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roi", choices=("whole", "lesion", "both"), default="both")
    parser.add_argument("--limit", type=int, default=0, help="embed a random subset of this many images")
    args = parser.parse_args(argv)
    import torch  # noqa: PLC0415

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    for roi in (("whole", "lesion") if args.roi == "both" else (args.roi,)):
        images, y, groups = load(roi, args.limit)
        print(f"\nBUSI {roi}: {len(y)} images ({y.sum()} malignant), {len(set(groups))} fold groups")
        for weights in ("imagenet", "random"):
            start = time.perf_counter()
            x, _ = embed(images, weights)
            aucs = cv_auc(x, y, groups)
            print(f"  Lite0 {weights:8s}  AUC {aucs.mean():.3f} +- {aucs.std():.3f} (folds "
                  f"{', '.join(f'{a:.3f}' for a in aucs)})  [{time.perf_counter() - start:.0f} s: embed + CV]")
    embedder = embed([np.zeros((64, 64), np.uint8)], "imagenet")[1]
    rates = throughput(embedder)
    print(f"\nLite0 forward on {embedder.device}, batch 16, 224 px: {np.median(rates):.1f} images/s median "
          f"(best {rates.max():.1f}, of {len(rates)} runs of 64 images)")


if __name__ == "__main__":
    main()
