"""Does a run on a Dask cluster give the same results as a local run? Through the CLI, as a user
runs it: `run -c study.yaml` once locally and once with
`--set extract.scheduler=dask-local:2 --set fit.scheduler=dask-local:2`, each into its own run
folder, then every embedding, metric, prediction and the report's text are compared.

    python scripts/cluster_equivalence.py [--images 60] [--root ../runs/cluster_equivalence]
    python scripts/cluster_equivalence.py -c study.yaml       # your own study instead

The default study is the first ``--images`` BUSI images (../shared/data/busi; Al-Dhabyani et al.,
Data in Brief 28 (2020) 104863), benign vs malignant, with the handcrafted descriptors and an
EfficientNet-B0 whose seeded random weights are saved to a file (the workers load the same file),
two learners, the stack and its backbone ablations. Exit status 1 if anything differs.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BUSI = REPO.parent / "shared" / "data" / "busi"
CLUSTER = ["--set", "extract.scheduler=dask-local:2", "--set", "fit.scheduler=dask-local:2"]


def make_study(root: Path, n: int) -> Path:
    import pandas as pd  # noqa: PLC0415

    from features.backbones import build_embedder, resolve_weights  # noqa: PLC0415

    root.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(BUSI / "manifest.csv", dtype=str, keep_default_na=False)
    frame = frame[frame["label"] != "normal"].sample(n=n, random_state=0)
    frame = frame.assign(ultrasound_path=[str(BUSI / p) for p in frame["ultrasound_path"]])
    frame[["case_id", "patient_id", "label", "ultrasound_path"]].to_csv(root / "manifest.csv", index=False)
    weights = root / "efficientnetb0.weights.h5"
    if not weights.exists():
        build_embedder("efficientnetb0", resolve_weights("efficientnetb0", "random", 0), 96).model.save_weights(weights)
    study = root / "study.yaml"
    study.write_text(f"""study: cluster equivalence (BUSI, {n} images)
manifest: manifest.csv
output: local
seed: 0
label: {{column: label, positive: malignant}}
patient_column: patient_id
modalities:
  ultrasound: {{path_column: ultrasound_path}}
extract:
  backbones: [handcrafted, {{name: efficientnetb0, weights: {weights}, input_size: 96}}]
fuse: {{test_size: 0.25, n_folds: 3}}
fit: {{learners: [lr, knn], stack_base: [lr, knn], pca_components: 8, n_boot: 200}}
""")
    return study


def run(study: Path, output: Path, extra=()):
    start = time.perf_counter()
    cmd = [sys.executable, str(REPO / "run_pipeline.py"), "--no-progress", "-q", "run", "-c", str(study),
           "--output", str(output), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        sys.exit(f"{' '.join(cmd)} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return time.perf_counter() - start


def _h5_arrays(path: Path) -> dict:
    import h5py  # noqa: PLC0415

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _numbers(value, drop=("time", "elapsed", "seconds", "cluster", "fits", "versions")):
    """A record without what may differ by where it ran (timings, the cluster's description)."""
    if isinstance(value, dict):
        return {k: _numbers(v, drop) for k, v in value.items() if not any(d in k for d in drop)}
    if isinstance(value, list):
        return [_numbers(v, drop) for v in value]
    return value


# what may differ by where and when a run ran: the date, the fit-time cells of the comparison
# table, the reproduce commands and the config's echo of the run folder and the schedulers
_WHERE_AND_WHEN = (r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", r"Reproduce with: [^(<]*", r"python run_pipeline\.py [^<]*",
                   r"&#34;(scheduler|output)&#34;: &#34;[^&]*&#34;")


def _report_text(path: Path) -> list[str]:
    """The report's visible text, with what may differ by where and when it ran masked."""
    html = path.read_text()
    html = re.sub(r"<script.*?</script>|<style.*?</style>", "", html, flags=re.S)
    html = re.sub(r'(<td data-value="[^"]*">[^<]*</td>\s*){2}</tr>', "<td>(fit times)</td></tr>", html)
    for pattern in _WHERE_AND_WHEN:
        html = re.sub(pattern, "(where/when)", html)
    text = re.sub(r"<[^>]+>", "\n", html)
    return [line.strip() for line in text.splitlines() if line.strip()]


def compare(local: Path, cluster: Path) -> list[str]:
    problems = []
    for h5 in sorted((local / "features").rglob("*.h5")):
        other = cluster / h5.relative_to(local)
        a, b = _h5_arrays(h5), _h5_arrays(other)
        for name in a:
            if name not in b or not np.array_equal(a[name], b[name]):
                problems.append(f"{h5.relative_to(local)}:{name} differs")
        print(f"embeddings {h5.relative_to(local)}: {len(a)} datasets compared")
    ma = json.loads((local / "models" / "metrics.json").read_text())
    mb = json.loads((cluster / "models" / "metrics.json").read_text())
    if _numbers(ma["learners"]) != _numbers(mb["learners"]):
        problems.append("models/metrics.json: learners' metrics differ")
    print(f"metrics: {len(ma['learners'])} models compared")
    for csv in ("cv_predictions.csv", "holdout_predictions.csv"):
        if (local / "models" / csv).read_bytes() != (cluster / "models" / csv).read_bytes():
            problems.append(f"models/{csv} differs")
    reports = sorted((local / "reports").glob("*.html"))
    for rep in reports:
        ta, tb = _report_text(rep), _report_text(cluster / rep.relative_to(local))
        diff = [(x, y) for x, y in zip(ta, tb) if x != y]
        if diff or len(ta) != len(tb):
            problems.append(f"{rep.relative_to(local)}: {len(diff)} lines differ, e.g. {diff[:3]}")
        print(f"report {rep.relative_to(local)}: {len(ta)} lines of text compared (date, fit times, "
              "reproduce commands and the schedulers' echo masked)")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", type=Path, help="a study file (default: a BUSI study made here)")
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--root", type=Path, default=REPO.parent / "runs" / "cluster_equivalence")
    args = parser.parse_args()
    study = args.config or make_study(args.root, args.images)
    local, cluster = args.root / "local", args.root / "dask-local-2"
    print(f"local run:   {run(study, local, ['--force']):.0f} s")
    print(f"cluster run: {run(study, cluster, ['--force', *CLUSTER]):.0f} s  ({' '.join(CLUSTER)})")
    problems = compare(local, cluster)
    for p in problems:
        print("DIFFERS:", p)
    print("identical" if not problems else f"{len(problems)} differences")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
