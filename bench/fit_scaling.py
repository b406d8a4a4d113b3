"""How the full comparison (all learners + stack, 5-fold patient-wise CV) grows with n.

    python bench/fit_scaling.py [--sizes 500,2000,10000] [--blocks 3] [--width 2048]

Synthetic cases with three 2048-wide embedding blocks (signal in a few directions) and three
clinical columns; the same settings as `fit`'s defaults (PCA 64 per block, SMOTE, n_jobs=2,
single-threaded BLAS, fusion cache). Prints wall time per learner and in all, peak memory, and
the growth exponent between sizes. Each size runs in its own process so peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LEARNERS = ["knn", "svm", "rf", "et", "mlp", "lr", "xgb"]


def synthetic(n, blocks, width, seed=0):
    import pandas as pd  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.35, "malignant", "benign")
    signal = (y == "malignant").astype(float)
    columns, layout = {}, {"blocks": {}, "clinical": {"age": "numeric", "density": "ordinal",
                                                      "history": "categorical"}, "indicators": []}
    for b in range(blocks):
        x = rng.normal(size=(n, width)).astype(np.float32)
        x[:, :8] += 0.6 * signal[:, None]
        names = [f"m{b}/cnn/{j:04d}" for j in range(width)]
        layout["blocks"][f"m{b}/cnn"] = names
        columns.update(dict(zip(names, x.T)))
    columns["age"] = 50 + 8 * signal + rng.normal(0, 10, n)
    columns["density"] = rng.integers(1, 5, n).astype(float)
    columns["history"] = np.where(rng.random(n) < 0.2 + 0.2 * signal, "yes", "no").astype(object)
    groups = np.arange(n) // 2
    return pd.DataFrame(columns), y, groups, layout


def _tree_rss_mb(root):
    """Resident memory of a process and its children (loky workers), from /proc."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(pid) == root or int(fields.get("PPid", "0").strip() or 0) == root:
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


class _PeakMemory(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.running = 0.0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, _tree_rss_mb(os.getpid()))
            time.sleep(0.5)


def run_size(n, blocks, width):
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    from models.evaluate import cross_validate_learner  # noqa: PLC0415
    from models.learners import make_pipeline, make_stack  # noqa: PLC0415
    from models.splits import cv_folds  # noqa: PLC0415

    monitor = _PeakMemory()
    monitor.start()
    X, y, groups, layout = synthetic(n, blocks, width)
    folds = cv_folds(y, groups, 5, 1, 0)
    times = {}
    with tempfile.TemporaryDirectory() as cache, threadpool_limits(1):
        common = {"pca_components": 64, "random_state": 0, "memory": cache}
        for name in LEARNERS + ["stack"]:
            est = (make_stack(LEARNERS[:5], layout, **common) if name == "stack"
                   else make_pipeline(name, layout, **common))
            start = time.perf_counter()
            cv = cross_validate_learner(est, X, y, folds, n_jobs=2, groups=groups, positive="malignant")
            times[name] = (time.perf_counter() - start, cv.summary()["roc_auc"]["mean"])
    monitor.running = False
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "times": times, "peak_mb_main": own, "peak_mb_tree": monitor.peak}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500,2000,10000")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(run_size(args.worker, args.blocks, args.width)))
        return
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        start = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--worker", str(n), "--blocks", str(args.blocks),
                              "--width", str(args.width)], capture_output=True, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if out.returncode:
            print(out.stderr[-2000:])
            break
        res = json.loads(out.stdout.strip().splitlines()[-1])
        res["wall"] = time.perf_counter() - start
        results.append(res)
        slowest = max(res["times"], key=lambda k: res["times"][k][0])
        print(f"n={n:>6}: {res['wall']:7.1f} s in all, peak memory {res['peak_mb_main']:.0f} MB main process, "
              f"{res['peak_mb_tree']:.0f} MB with its workers; slowest: {slowest}")
        print("          " + ", ".join(f"{k} {t:.1f}s (AUC {a:.2f})" for k, (t, a) in res["times"].items()))
    for a, b in zip(results, results[1:]):
        k = np.log(b["wall"] / a["wall"]) / np.log(b["n"] / a["n"])
        print(f"growth n={a['n']}->{b['n']}: time x{b['wall'] / a['wall']:.1f}, exponent {k:.2f}")


if __name__ == "__main__":
    main()
