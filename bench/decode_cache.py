"""Decode once: adding a backbone to a study of large 16-bit DICOM mammograms, with and without
the decoded-image cache, measured side by side in one run.

    python bench/decode_cache.py [--images 12] [--height 3000] [--width 2000]

Makes --images DICOMs (16-bit, 3000 x 2000 by default, about 12 MB each) from real Mini-DDSM films
in ../shared/data (upscaled, 12 bits stored), then in two fresh run folders: extract with
`handcrafted` (cold: decode + preprocess every image), then add `efficientnetb0` (random weights, a
cheap forward pass so decoding shows). Prints each step's seconds and the ratio of the second
step with the cache to the same step without it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
SHARED = REPO.parent / "shared" / "data" / "mini_ddsm_subset"


def make_dicoms(folder, n, height, width):
    import cv2
    import pandas as pd

    from study_factory import make_dicom

    frame = pd.read_csv(SHARED / "manifest.csv", dtype=str, keep_default_na=False)
    rows = []
    for i in range(n):
        row = frame.iloc[i % len(frame)]
        gray = cv2.imread(str(SHARED / row["mammography_path"]), cv2.IMREAD_GRAYSCALE)
        big = cv2.resize(gray, (width, height), interpolation=cv2.INTER_CUBIC).astype("uint16") * 16
        big[(i * 7) % height, (i * 11) % width] += 1          # every file different
        path = folder / f"mg_{i:03d}.dcm"
        make_dicom(path, big, photometric="MONOCHROME2", window=None)
        rows.append({"case_id": f"c{i:03d}", "patient_id": f"p{i // 2:03d}", "label": "benign" if i % 2 else "malignant",
                     "mammography_path": path.name})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)


def study_for(folder, run_dir, cache):
    from pipeline.config import validate

    raw = {"study": "dicoms", "manifest": str(folder / "manifest.csv"), "output": str(run_dir),
           "modalities": {"mammography": {"path_column": "mammography_path"}},
           "extract": {"backbones": ["handcrafted"], "weights": "random", "decode_cache": cache,
                       "input_size": 224, "batch_size": 8}}
    return validate(raw, folder)


def timed(study, backbones):
    from pipeline.runner import run_stage

    study = study.with_overrides([(["extract", "backbones"], backbones)])
    start = time.perf_counter()
    outcome = run_stage("extract", study, show_progress=False)
    return time.perf_counter() - start, outcome.summary.get("decoded")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--width", type=int, default=2000)
    args = parser.parse_args()
    from pipeline.progress import setup_logging

    setup_logging(-1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_dicoms(root, args.images, args.height, args.width)
        size = sum(p.stat().st_size for p in root.glob("*.dcm")) / 1e6
        print(f"{args.images} DICOMs of {args.height} x {args.width} x 16 bit ({size:.0f} MB)")
        figures = {}
        warm = study_for(root, root / "warm", False)      # TensorFlow and the model built once, outside the figures
        timed(warm.with_overrides([(["extract", "backbones"], ["efficientnetb0"])]), ["efficientnetb0"])
        for cache in (True, False):
            study = study_for(root, root / f"run_{cache}", cache)
            cold, _ = timed(study, ["handcrafted"])
            added, decoded = timed(study, ["handcrafted", "efficientnetb0"])
            figures[cache] = (cold, added)
            print(f"decode_cache {str(cache).lower():5}: cold extract (handcrafted) {cold:6.1f} s; "
                  f"adding efficientnetb0 {added:6.1f} s ({decoded or 'no cache'})")
        cache_dir = root / "run_True" / ".cache" / "decoded"
        kept = sum(p.stat().st_size for p in cache_dir.rglob("*") if p.is_file()) / 1e6
        print(f"adding a backbone: {figures[False][1] / figures[True][1]:.2f}x faster with the cache; "
              f"cold run with the cache {figures[True][0] / figures[False][0]:.2f}x the time without; "
              f"cache on disk {kept:.0f} MB ({kept / size:.0%} of the DICOMs)")


if __name__ == "__main__":
    main()
