"""The radiomics block on real BUSI images with their lesion masks, through the extractor's own path
(decode threads, batches, ``embed``), with PyRadiomics in worker processes or in this one.

    python bench/radiomics_block.py [--n 780] [--workers 2] [--processes 2] [--batch-size 16]
                                    [--image-types original] [--check]

``--processes 1`` computes in this process (only the decode threads run beside it), showing what
threads alone give. ``--check`` recomputes the first rows with one process and batch 1 and prints
the largest difference (results must not depend on workers or batches). Normal cases have an empty
mask, so their ROI is the whole frame (``roi_without_mask: frame``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUSI = REPO.parent / "shared" / "data" / "busi"
sys.path.insert(0, str(REPO))


def jobs(n):
    import pandas as pd  # noqa: PLC0415

    from features.extraction import ImageJob  # noqa: PLC0415

    frame = pd.read_csv(BUSI / "manifest.csv", dtype=str, keep_default_na=False).head(n)
    return [ImageJob(r.case_id, BUSI / r.ultrasound_path, BUSI / r.mask_path if r.mask_path else None,
                     {"radiomics": r.case_id}) for r in frame.itertuples()]


def embed(job_list, params, workers, batch_size):
    from features.backbones import build_embedder, resolve_weights  # noqa: PLC0415
    from features.extraction import run_extraction  # noqa: PLC0415
    from features.preprocess_spec import PreprocessSpec  # noqa: PLC0415

    start = time.perf_counter()
    embedder = build_embedder("radiomics", resolve_weights("radiomics", None, 0, params), params=params)
    rows = {}

    def on_result(name, batch, emb):
        rows.update({j.case_id: e for j, e in zip(batch, emb)})

    failures = run_extraction(job_list, {"radiomics": embedder}, PreprocessSpec(), on_result,
                              batch_size=batch_size, workers=workers)
    seconds = time.perf_counter() - start
    return embedder, rows, failures, seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=780)
    ap.add_argument("--workers", type=int, default=2, help="decode threads (extract.workers)")
    ap.add_argument("--processes", type=int, default=2, help="PyRadiomics worker processes (params.processes)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--image-types", default="original", help="comma-separated: original,log,wavelet")
    ap.add_argument("--check", action="store_true", help="recompute 8 rows with 1 process, batch 1, compare")
    args = ap.parse_args(argv)
    params = {"image_types": args.image_types.split(","), "processes": args.processes}
    job_list = jobs(args.n)
    embedder, rows, failures, seconds = embed(job_list, params, args.workers, args.batch_size)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"radiomics block ({', '.join(params['image_types'])}): {len(rows)} BUSI image(s) in {seconds:.1f} s "
          f"= {len(rows) / seconds:.1f} images/s; {embedder.dim} features; {len(failures)} failure(s); "
          f"workers={args.workers} processes={embedder.processes} batch={args.batch_size} on {cores} core(s) "
          "(includes building the extractor and starting its processes)")
    for f in failures[:5]:
        print(f"  failed: {f.path}: {f.reason}")
    if args.check:
        few = job_list[:8]
        _, again, _, _ = embed(few, {**params, "processes": 1}, 1, 1)
        diff = max(float(np.nanmax(np.abs(rows[j.case_id] - again[j.case_id]))) for j in few if j.case_id in rows)
        print(f"check: largest difference over {len(few)} rows, processes={embedder.processes}/batch "
              f"{args.batch_size} vs 1/1: {diff:g}")
    embedder.close()


if __name__ == "__main__":
    main()
