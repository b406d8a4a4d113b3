#!/usr/bin/env python3
"""Multi-view pooling on real films: the Mini-DDSM subset's CC + MLO pairs as breast-level cases.

    python scripts/multiview_mini_ddsm.py [--backbone handcrafted] [--out runs/multiview]

Imports ../shared/data/mini_ddsm_subset/manifest.csv (one row per image) with
`import long --level breast`, embeds every film once with extract, and builds the design blocks
as fuse does for `pool: mean`, `max` and `concat`. The subset is one class (benign), so there is no
classifier to fit: this shows the pooling, not a figure. Prints what it checked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "mini_ddsm_subset"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="handcrafted")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "multiview")
    args = parser.parse_args()

    from pipeline.catalog import Catalog
    from pipeline.config import load_study
    from pipeline.importers import Options, run_import
    from pipeline.modalities import design_tables
    from pipeline.progress import setup_logging
    from pipeline.runner import run_stage

    setup_logging(-1)
    run_import("long", SHARED / "manifest.csv", args.out / "study", Options(modality="mammography", level="breast"))
    weights = "imagenet" if args.backbone.startswith("torch:") else "random"
    study = load_study(args.out / "study" / "study.yaml",
                       [(["extract", "backbones"], [args.backbone]), (["extract", "weights"], weights),
                        (["output"], str((args.out / "run").resolve()))])
    outcome = run_stage("extract", study, show_progress=False, labelled=False)   # one class: no split to check
    table = Catalog(study.run_dir).read("extract:embeddings", modality="mammography", backbone=args.backbone)
    print(f"{len(set(table.case_ids))} breasts, {len(table.case_ids)} films embedded once each "
          f"({outcome.summary.get('computed') if outcome.ran else 'cached'}); views {sorted(set(table.views))}")
    rows = {(c, v): e.astype(np.float64) for c, v, e in zip(table.case_ids, table.views, table.embeddings)}
    for pool in ("mean", "max", "concat"):
        pooled = study.with_overrides([(["modalities", "mammography", "pool"], pool)])
        blocks = design_tables(pooled.modalities, {("mammography", args.backbone): table})
        names = sorted(f"{m}/{b}" for m, b in blocks)
        if pool == "concat":
            ok = all(np.allclose(blocks[("mammography." + v, args.backbone)].embeddings[i], rows[(c, v)])
                     for v in ("cc", "mlo")
                     for i, c in enumerate(blocks[("mammography." + v, args.backbone)].case_ids))
        else:
            reduce = np.mean if pool == "mean" else np.max
            block = blocks[("mammography", args.backbone)]
            ok = all(np.allclose(e, reduce([rows[(c, "cc")], rows[(c, "mlo")]], axis=0))
                     for c, e in zip(block.case_ids, block.embeddings))
        width = sum(t.embeddings.shape[1] for t in blocks.values())
        print(f"pool {pool:6}: blocks {', '.join(names)}; {width} columns per breast; "
              f"equal to the {pool} of each breast's CC and MLO embeddings: {ok}")


if __name__ == "__main__":
    main()
