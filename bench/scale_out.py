"""Scale-out: `extract` locally and on a Dask LocalCluster of 2 worker processes, on the same BUSI
images, side by side in one run; the per-image costs; and a cost model of large studies.

    python bench/scale_out.py [--images 120] [--backbones handcrafted,efficientnetb0]

On a 2-core machine expect parity at best: the figure is the cluster's overhead (worker start-up,
model built in each worker, results sent back), as a ratio. The per-image costs (decode,
preprocess, each backbone, HDF5 write) feed the cost model printed at the end: a 20k-image and a
3.4M-image study on N GPU workers, with the GPU rate given by --gpu-rate (img/s per worker; the
default is a published Keras ResNet50 inference rate, NOT measured here unless a GPU was lent).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BUSI = REPO.parent / "shared" / "data" / "busi"
#: ResNet50 float16 inference on one V100-class GPU with Keras/TF, batch 64: order of 1,000 img/s
#: (NVIDIA's published TF ResNet50 inference figures). Not measured on this machine.
PUBLISHED_GPU_RATE = 1000.0
#: Decoding one full-field 2000 x 3000 16-bit JPEG 2000 lossless DICOM (pylibjpeg-openjpeg), as
#: bench/dicom_decode.py measured it on this kind of machine (README, DICOM section): 0.46 s.
FULL_FIELD_DECODE_S = 0.46


def make_study(root, n, backbones):
    import pandas as pd

    from pipeline.config import validate

    frame = pd.read_csv(BUSI / "manifest.csv", dtype=str, keep_default_na=False).sample(n=n, random_state=0)
    frame = frame.assign(ultrasound_path=[str(BUSI / p) for p in frame["ultrasound_path"]])
    frame[["case_id", "patient_id", "label", "ultrasound_path"]].to_csv(root / "manifest.csv", index=False)
    items = []
    for b in backbones:
        if b == "handcrafted":
            items.append(b)
            continue
        from features.backbones import build_embedder, resolve_weights

        embedder = build_embedder(b, resolve_weights(b, "random", 0))
        path = root / f"{b}.weights.h5"           # a file: every worker loads the same weights
        embedder.model.save_weights(path)
        items.append({"name": b, "weights": str(path)})
    raw = {"study": "scale-out", "manifest": str(root / "manifest.csv"), "output": str(root / "run"),
           "modalities": {"ultrasound": {"path_column": "ultrasound_path"}},
           "extract": {"backbones": items, "decode_cache": False}}
    return validate(raw, root)


def timed_extract(study, scheduler, out):
    from pipeline.runner import run_stage

    study = study.with_overrides([(["output"], str(out)), (["extract", "scheduler"], scheduler)])
    start = time.perf_counter()
    run_stage("extract", study, show_progress=False)
    return time.perf_counter() - start, study


def per_image_costs(study, n):
    """Seconds per image of each step, measured on this process (threads as extract uses them)."""
    from features.backbones import build_embedder, resolve_weights
    from features.imageio import read_gray
    from features.preprocess import preprocess
    from features.store import EmbeddingTable, write_table

    paths = [Path(p) for p in __import__("pandas").read_csv(study.manifest_path)["ultrasound_path"]][:n]
    spec = study.modalities["ultrasound"].preprocess
    t0 = time.perf_counter()
    grays = [read_gray(p) for p in paths]
    t1 = time.perf_counter()
    prepped = [preprocess(g, spec)[0] for g in grays]
    t2 = time.perf_counter()
    costs = {"decode": (t1 - t0) / n, "preprocess": (t2 - t1) / n}
    dims = 0
    for b in study.extract.backbones:
        embedder = build_embedder(b.name, resolve_weights(b.name, b.weights, 0), b.input_size)
        stack = np.stack([embedder.prepare(g) for g in prepped[:2]])
        embedder.embed(stack)                                  # warm: graph traced once
        t0 = time.perf_counter()
        emb = embedder.embed(np.stack([embedder.prepare(g) for g in prepped]))
        costs[b.name] = (time.perf_counter() - t0) / n
        dims += emb.shape[1]
    with tempfile.TemporaryDirectory() as tmp:
        table = EmbeddingTable([f"c{i}" for i in range(n)], [f"k{i}" for i in range(n)],
                               np.zeros((n, dims), np.float32))
        t0 = time.perf_counter()
        write_table(Path(tmp) / "t.h5", table)
        costs["write"] = (time.perf_counter() - t0) / n
    return costs


def cost_model(costs, gpu_rate, images, workers, decode=None):
    """Hours for ``images`` on ``workers`` GPU workers: each worker decodes and preprocesses on its
    CPU cores while its GPU embeds; the client writes every row (one HDF5 writer). ``decode``
    replaces the measured decode time (seconds per image), e.g. for full-field DICOMs."""
    cpu = (costs["decode"] if decode is None else decode) + costs["preprocess"]
    per_worker = max(cpu / 8, 1 / gpu_rate)                # 8 decode threads per worker
    embed_hours = images * per_worker / workers / 3600
    write_hours = images * costs["write"] / 3600
    bound = "GPU" if 1 / gpu_rate >= cpu / 8 else "decode"
    hours = max(embed_hours, write_hours)
    return hours, bound if embed_hours >= write_hours else "HDF5 write (one client)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--backbones", default="handcrafted,efficientnetb0")
    parser.add_argument("--gpu-rate", type=float, default=PUBLISHED_GPU_RATE)
    args = parser.parse_args()
    from pipeline.progress import setup_logging

    setup_logging(-1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        study = make_study(root, args.images, args.backbones.split(","))
        local, _ = timed_extract(study, "local", root / "local")
        cluster, _ = timed_extract(study, "dask-local:2", root / "cluster")
        from pipeline.catalog import Catalog

        same = all(np.array_equal(Catalog(root / "local").read("extract:embeddings", modality="ultrasound",
                                                                 backbone=b.name).embeddings,
                                  Catalog(root / "cluster").read("extract:embeddings", modality="ultrasound",
                                                                   backbone=b.name).embeddings)
                   for b in study.extract.backbones)
        print(f"{args.images} BUSI images, {args.backbones}: local {local:.1f} s ({args.images / local:.1f} img/s), "
              f"dask-local:2 {cluster:.1f} s ({args.images / cluster:.1f} img/s); cluster / local time "
              f"{cluster / local:.2f}; embeddings identical: {same}")
        costs = per_image_costs(study, min(args.images, 48))
        print("per-image costs (ms): " + ", ".join(f"{k} {v * 1000:.1f}" for k, v in costs.items()))
    cpu_cnn = {k: v for k, v in costs.items() if k not in ("decode", "preprocess", "write", "handcrafted")}
    note = "published rate, not measured here" if args.gpu_rate == PUBLISHED_GPU_RATE else "measured"
    print(f"cost model with a GPU rate of {args.gpu_rate:.0f} img/s per worker ({note}); CPU rates here: "
          + ", ".join(f"{k} {1 / v:.0f} img/s" for k, v in cpu_cnn.items()))
    for what, decode in ((f"decode as measured here ({costs['decode'] * 1000:.1f} ms, BUSI PNGs)", None),
                         (f"full-field JPEG 2000 DICOMs ({FULL_FIELD_DECODE_S:.2f} s each, bench/dicom_decode.py)",
                          FULL_FIELD_DECODE_S)):
        print(f" {what}, 8 decode threads per worker:")
        for images in (20_000, 3_400_000):
            for workers in (1, 4, 16, 64):
                hours, bound = cost_model(costs, args.gpu_rate, images, workers, decode)
                print(f"  {images:>9,} images on {workers:>2} GPU worker(s): {hours:7.2f} h, bound by {bound}")


if __name__ == "__main__":
    main()
