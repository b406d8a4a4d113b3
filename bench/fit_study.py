"""Fit time of a 1,900-case, 4-block binary study with 6 ablation stacks (issue 13's target).

    python bench/fit_study.py [--root ../runs/bench_fit_study] [--copies 3]

The study is built from BUSI (../shared/data/busi; Al-Dhabyani et al., Data in Brief 28 (2020)
104863) by augmentation: each of its 647 benign/malignant images is written ``--copies`` times
(the original, a horizontal flip, and the flip rotated by 4 degrees), so 3 copies give 1,941 cases.
Every copy keeps its source image's patient id and near-duplicate group, so the copies of one
image always share a fold and a split side (no leakage through augmentation). BUSI has no clinical
table; the source image's recorded width and height (manifest columns) stand in for one, so the
``images_only`` and ``clinical_only`` ablations exist: with the four backbone ablations that makes
six. Embeddings use seeded random weights (the machine has no ImageNet files): the same FLOPs and
widths, weaker features.

The images, extract and fuse are made once (not timed) in ``--root``. Then, each in its own
process one after the other: ``fit`` cold (empty fit cache), ``fit`` again with only
``fit.n_boot`` changed (every fit from the cache), and with ``--before PATH`` (a checkout of an
older commit, e.g. ``git worktree add ../old 0574da1``) that commit's ``fit`` on the same design,
for the ratio. Prints wall seconds and whether every learner's CV and held-out AUC are equal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUSI = REPO.parent / "shared" / "data" / "busi"


def _cli(repo):
    return [sys.executable, str(Path(repo) / "run_pipeline.py"), "--no-progress", "-q"]


def _augmented(image, k):
    import cv2  # noqa: PLC0415

    if k == 0:
        return image
    flipped = image[:, ::-1]
    if k == 1:
        return flipped
    h, w = flipped.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0 * (k - 1), 1.0)
    return cv2.warpAffine(flipped, turn, (w, h), borderMode=cv2.BORDER_REFLECT)


def build_study(root: Path, copies: int) -> Path:
    """Images, manifest and study.yaml of the augmented BUSI study (kept if already there)."""
    import cv2  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    study = root / "study.yaml"
    if study.exists():
        return study
    source = pd.read_csv(BUSI / "manifest.csv")
    source = source[source["label"] != "normal"]
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for rec in source.itertuples():
        image = cv2.imread(str(BUSI / rec.ultrasound_path), cv2.IMREAD_GRAYSCALE)
        for k in range(copies):
            name = f"{rec.case_id}_a{k}.png"
            cv2.imwrite(str(root / "images" / name), _augmented(image, k))
            rows.append({"case_id": f"{rec.case_id}_a{k}", "patient_id": rec.patient_id,
                         "label": rec.label, "ultrasound_path": f"images/{name}",
                         "dup_group": rec.dup_group if isinstance(rec.dup_group, str) else rec.case_id,
                         "width": rec.orig_width, "height": rec.orig_height})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    study.write_text(f"""study: BUSI augmented x{copies} (fit benchmark)
manifest: manifest.csv
output: run
seed: 0
label: {{column: label, positive: malignant}}
patient_column: patient_id
modalities:
  ultrasound: {{path_column: ultrasound_path, preprocessing: {{kind: ultrasound}}}}
clinical: {{width: numeric, height: numeric}}
extract:
  backbones: [resnet50, vgg16, efficientnetb0, handcrafted]
  weights: random
fuse: {{group_column: dup_group, test_size: 0.2, n_folds: 5}}
""")
    return study


def _run(args, repo=REPO):
    start = time.perf_counter()
    out = subprocess.run(_cli(repo) + args, capture_output=True, text=True, cwd=repo, env=os.environ)
    if out.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - start


def _aucs(root):
    metrics = json.loads((root / "run" / "models" / "metrics.json").read_text())
    return {name: (rec["cv"]["roc_auc"]["mean"], rec["holdout"]["roc_auc"]) for name, rec in metrics["learners"].items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO.parent / "runs" / "bench_fit_study")
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a checkout of an older commit to compare with")
    args = parser.parse_args()
    study = build_study(args.root, args.copies)
    print(f"study: {study} ({sum(1 for _ in open(args.root / 'manifest.csv')) - 1} cases)")
    for stage in ("extract", "fuse"):
        print(f"{stage}: {_run([stage, '-c', str(study)]):.0f} s (not part of the figure)")
    cache = args.root / "run" / ".cache" / "fit"
    figures, aucs = {}, {}
    shutil.rmtree(cache, ignore_errors=True)
    figures["cold (empty fit cache)"] = _run(["fit", "-c", str(study), "--force"])
    aucs["cold"] = _aucs(args.root)
    fits = json.loads((args.root / "run" / "models" / "metrics.json").read_text())["fits"]
    figures["re-run, fit.n_boot changed"] = _run(["fit", "-c", str(study), "--set", "fit.n_boot=500"])
    aucs["re-run"] = _aucs(args.root)
    if args.before:
        figures[f"before ({args.before.name})"] = _run(["fit", "-c", str(study), "--force"], args.before)
        aucs["before"] = _aucs(args.root)
        _run(["fit", "-c", str(study)])        # this commit again, from its cache
    print(f"fits: {fits['requested']} asked for by the models, {fits['distinct']} distinct")
    for name, seconds in figures.items():
        print(f"fit {name:<28} {seconds:7.1f} s  ({seconds / 60:.1f} min)")
    if args.before:
        print(f"ratio before / cold: {figures[f'before ({args.before.name})'] / figures['cold (empty fit cache)']:.2f}")
    first = aucs["cold"]
    for name, other in aucs.items():
        print(f"CV and held-out AUC of every model, {name} == cold: {other == first}")
    print(json.dumps({k: [round(v, 4) for v in vs] for k, vs in first.items()}))


if __name__ == "__main__":
    main()
