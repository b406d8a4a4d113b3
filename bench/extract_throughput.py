"""Extraction throughput on real BUSI images: the notebook-style per-image `model.predict` loop
against BreastFuse's batched extractor (decode and preprocessing included), as a fraction of the
machine's float32 matmul rate measured in the same run; TensorFlow against OpenVINO
(`extract.runtime`); a sweep of batch size, TensorFlow's thread pools and oneDNN; then a cold vs
cached `extract` run.

    python bench/extract_throughput.py [--images 48] [--backbones resnet50,vgg16,efficientnetb0]
                                       [--sections naive,runtime,sweep,cache]

Each measurement runs in its own process (a fresh TensorFlow), one after the other, so they
compete for nothing. Weights are seeded random (same FLOPs as ImageNet ones).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUSI = REPO.parent / "shared" / "data" / "busi"
sys.path.insert(0, str(REPO))

#: Forward-pass cost at 224x224, include_top=False (measured for this issue's brief).
GFLOP_224 = {"resnet50": 7.7, "vgg16": 30.7, "efficientnetb0": 0.77}


def busi_paths(n):
    import pandas as pd  # noqa: PLC0415

    frame = pd.read_csv(BUSI / "manifest.csv").sample(n=n, random_state=0)
    return [str(BUSI / p) for p in frame["ultrasound_path"]], frame


def numpy_gflops(seconds=3.0, n=2048):
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    start, k = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ a
        k += 1
    return 2 * n**3 * k / (time.perf_counter() - start) / 1e9


def worker_naive(backbone, n):
    """What notebooks do: read, resize, preprocess and model.predict one image at a time."""
    import cv2  # noqa: PLC0415
    import keras  # noqa: PLC0415

    from features.backbones import BACKBONES, _keras_constructor  # noqa: PLC0415

    ctor, preprocess, _ = _keras_constructor(keras, backbone)
    keras.utils.set_random_seed(0)
    size = BACKBONES[backbone].input_size
    model = ctor(include_top=False, weights=None, input_shape=(size, size, 3), pooling="avg")
    paths, _ = busi_paths(n)

    def one(path):
        img = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        x = preprocess(cv2.resize(img, (size, size)).astype("float32")[None])
        return model.predict(x, verbose=0)

    one(paths[0])
    start = time.perf_counter()
    for p in paths:
        one(p)
    return n / (time.perf_counter() - start)


def set_tf_threads(intra, inter):
    """TensorFlow's intra-/inter-op pools (0: TensorFlow's own choice); before any op runs."""
    from features.backbones.keras_family import _import_keras  # noqa: PLC0415  (BreastFuse's env defaults)

    _, tf = _import_keras()
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)


def worker_pipeline(backbone, n, batch_size, runtime="tensorflow", intra=0, inter=0):
    """BreastFuse's extractor: threads decode + preprocess while the model runs fixed batches."""
    from features.backbones import build_embedder, resolve_weights  # noqa: PLC0415
    from features.extraction import ImageJob, run_extraction  # noqa: PLC0415
    from features.preprocess import PreprocessSpec  # noqa: PLC0415

    paths, _ = busi_paths(n)
    if intra or inter:
        set_tf_threads(intra, inter)
    embedder = build_embedder(backbone, resolve_weights(backbone, "random", 0), batch_size=batch_size,
                              runtime=runtime)
    spec = PreprocessSpec.for_modality("ultrasound")
    jobs = [ImageJob(str(i), Path(p), None, {backbone: str(i)}) for i, p in enumerate(paths)]
    run_extraction(jobs[:batch_size], {backbone: embedder}, spec, lambda *a: None, batch_size=batch_size)
    start = time.perf_counter()
    run_extraction(jobs, {backbone: embedder}, spec, lambda *a: None, batch_size=batch_size)
    return n / (time.perf_counter() - start)


#: Variables some environments set that cap OpenBLAS below the CPU (Haswell kernels on AVX-512).
BLAS_CAPS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_limit(uncapped):
    """(GFLOP/s, BLAS kernel) of float32 matmul in a fresh process, with the BLAS caps of this
    environment removed (``uncapped``: the machine's real limit) or as they are."""
    env = {k: v for k, v in os.environ.items() if not (uncapped and k in BLAS_CAPS)}
    code = ("import json, sys; sys.path.insert(0, %r); from extract_throughput import numpy_gflops; "
            "from threadpoolctl import threadpool_info; "
            "blas = [i for i in threadpool_info() if i.get('user_api') == 'blas']; "
            "print(json.dumps([numpy_gflops(), blas[0].get('architecture') if blas else None, "
            "blas[0].get('internal_api') if blas else None]))") % str(Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    gflops, arch, api = json.loads(out.stdout.strip().splitlines()[-1])
    return gflops, f"{api} {arch}"


def in_subprocess(mode, backbone, n, batch_size, env_extra=None, runtime="tensorflow", intra=0, inter=0):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    if mode == "naive":
        env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # a notebook's environment, as it comes
    out = subprocess.run([sys.executable, __file__, "--worker", mode, "--backbones", backbone,
                          "--images", str(n), "--batch-size", str(batch_size), "--runtime", runtime,
                          "--intra", str(intra), "--inter", str(inter)],
                         capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def cache_benchmark(n, backbones):
    """Cold `extract` then the same command again (nothing to compute)."""
    import yaml  # noqa: PLC0415

    _, frame = busi_paths(n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frame = frame.assign(ultrasound_path=[str(BUSI / p) for p in frame["ultrasound_path"]])
        frame[["case_id", "patient_id", "label", "ultrasound_path"]].to_csv(tmp / "manifest.csv", index=False)
        study = {"manifest": "manifest.csv", "output": "run", "modalities": {"ultrasound": {}},
                 "extract": {"backbones": backbones + ["handcrafted"], "weights": "random"}}
        (tmp / "study.yaml").write_text(yaml.safe_dump(study))
        times = []
        for _ in range(2):
            start = time.perf_counter()
            subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), "-q", "--no-progress", "extract",
                            "-c", str(tmp / "study.yaml")], check=True, cwd=REPO, capture_output=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            times.append(time.perf_counter() - start)
    return times


def images_for(backbone, n, batch_size):
    """Images to time: half for VGG16 (4x the FLOPs), whole batches only (no padded rows timed)."""
    n = n if backbone != "vgg16" else n // 2
    return max(-(-n // batch_size), 1) * batch_size


def naive_section(args, backbones, limit_of):
    print(f"{'backbone':<16}{'per-image img/s':>16}{'batched img/s':>15}{'speed-up':>10}{'of compute limit':>18}")
    for b in backbones:
        n = images_for(b, args.images, args.batch_size)
        naive = in_subprocess("naive", b, n, args.batch_size)
        ours = in_subprocess("pipeline", b, n, args.batch_size)
        print(f"{b:<16}{naive:>16.1f}{ours:>15.1f}{ours / naive:>9.1f}x{ours / limit_of(b):>17.0%}")
    ours = in_subprocess("pipeline", "handcrafted", args.images, args.batch_size)
    print(f"{'handcrafted':<16}{'-':>16}{ours:>15.1f}")


def runtime_section(args, backbones, limit_of):
    """extract.runtime side by side: the same batched extractor on TensorFlow and on OpenVINO."""
    print(f"\nextract.runtime, batch {args.batch_size} (OpenVINO: float32 on the CPU, converted before timing)")
    print(f"{'backbone':<16}{'tensorflow img/s':>17}{'openvino img/s':>16}{'openvino/tf':>13}"
          f"{'tf of limit':>13}{'ov of limit':>13}")
    for b in backbones:
        n = images_for(b, args.images, args.batch_size)
        on_tf = in_subprocess("pipeline", b, n, args.batch_size)
        on_ov = in_subprocess("pipeline", b, n, args.batch_size, runtime="openvino")
        print(f"{b:<16}{on_tf:>17.1f}{on_ov:>16.1f}{on_ov / on_tf:>12.2f}x"
              f"{on_tf / limit_of(b):>13.0%}{on_ov / limit_of(b):>13.0%}")


def sweep_settings(cores):
    """(label, batch size, runtime, intra, inter, extra environment) of the sweep's rows."""
    rows = [(f"{runtime} batch {batch}", batch, runtime, 0, 0, {})
            for runtime in ("tensorflow", "openvino") for batch in (8, 16, 32)]
    for intra, inter in sorted({(cores, 1), (cores, 2), (max(cores // 2, 1), 2)}):
        rows.append((f"tensorflow batch 16 intra {intra} inter {inter}", 16, "tensorflow", intra, inter, {}))
    rows.append(("tensorflow batch 16 TF_ENABLE_ONEDNN_OPTS=0", 16, "tensorflow", 0, 0,
                 {"TF_ENABLE_ONEDNN_OPTS": "0"}))
    return rows


def sweep_section(args, backbones, limit_of):
    """Batch size, TensorFlow's thread pools and oneDNN, one process per setting (default: TF's own
    thread choice, TF_ENABLE_ONEDNN_OPTS=1 as BreastFuse sets it)."""
    for b in backbones:
        print(f"\nsweep: {b}")
        print(f"{'setting':<48}{'img/s':>8}{'of compute limit':>18}")
        for label, batch, runtime, intra, inter, env in sweep_settings(os.cpu_count() or 1):
            rate = in_subprocess("pipeline", b, images_for(b, args.images, batch), batch, env, runtime, intra, inter)
            print(f"{label:<48}{rate:>8.1f}{rate / limit_of(b):>17.0%}")


SECTIONS = {"naive": naive_section, "runtime": runtime_section, "sweep": sweep_section}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--backbones", default="resnet50,vgg16,efficientnetb0")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--sections", default="naive,runtime,sweep,cache",
                    help="which parts to run, comma-separated: naive, runtime, sweep, cache")
    ap.add_argument("--worker", choices=["naive", "pipeline"], help=argparse.SUPPRESS)
    ap.add_argument("--runtime", default="tensorflow", help=argparse.SUPPRESS)
    ap.add_argument("--intra", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--inter", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    backbones = args.backbones.split(",")
    if args.worker:
        if args.worker == "naive":
            print(json.dumps(worker_naive(backbones[0], args.images)))
        else:
            print(json.dumps(worker_pipeline(backbones[0], args.images, args.batch_size, args.runtime,
                                             args.intra, args.inter)))
        return
    sections = args.sections.split(",")
    unknown = sorted(set(sections) - set(SECTIONS) - {"cache"})
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join([*SECTIONS, 'cache'])}")

    capped, capped_kernel = blas_limit(uncapped=False)
    gflops, kernel = blas_limit(uncapped=True)
    caps = {k: os.environ[k] for k in BLAS_CAPS if k in os.environ}
    print(f"numpy float32 matmul, the compute limit: {gflops:.0f} GFLOP/s on {os.cpu_count()} cores ({kernel}, "
          f"measured with {', '.join(BLAS_CAPS)} unset); as this environment runs it "
          f"({caps or 'no caps set'}): {capped:.0f} GFLOP/s ({capped_kernel}); {args.images} BUSI images")
    limit_of = lambda b: gflops / GFLOP_224[b]  # noqa: E731  (images/s at the compute limit)
    for name, section in SECTIONS.items():
        if name in sections:
            section(args, backbones, limit_of)
    gflops_after, _ = blas_limit(uncapped=True)
    print(f"the limit again after the runs: {gflops_after:.0f} GFLOP/s (figures above use the first)")
    if "cache" in sections:
        cold, warm = cache_benchmark(args.images, backbones)
        print(f"extract on {args.images} images, {len(backbones)} CNNs + handcrafted: cold {cold:.1f} s, "
              f"cached re-run {warm:.2f} s ({warm / cold:.1%} of cold)")


if __name__ == "__main__":
    main()
