"""How long `evaluate` takes on a large external cohort whose embeddings are already cached.

    python bench/evaluate_cohort.py [--train 200] [--cohort 1000] [--repeats 2]

Makes the synthetic demo's site a (training) and site b (the cohort; two images per case, so
--cohort 1000 is 2,000 images) at small image sizes, fits every learner and the stack with the
defaults, evaluates once (which embeds the cohort), then times `evaluate --force` with the
cohort's embeddings cached: extract finds everything in its cache, so the figure is the scoring
(every saved model on every case) and the patient-level bootstrap of every table (1,000 resamples).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=200, help="training cases (site a)")
    parser.add_argument("--cohort", type=int, default=1000, help="cohort cases (site b), two images each")
    parser.add_argument("--repeats", type=int, default=2, help="timed evaluate --force runs")
    args = parser.parse_args()

    from features.demo import make_demo_study
    from pipeline.config import validate
    from pipeline.demo import demo_study_dict
    from pipeline.progress import setup_logging
    from pipeline.runner import run_stage, run_stages

    setup_logging(-1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_demo_study(root / "data", n_cases=args.train, seed=0, mammo_size=96, us_size=96)
        make_demo_study(root / "site_b", n_cases=args.cohort, seed=0, mammo_size=96, us_size=96, site="b")
        raw = demo_study_dict(0)
        raw["extract"] = {"backbones": ["efficientnetb0", "handcrafted"], "weights": "random", "input_size": 96}
        study = validate(raw, root, path=root / "study.yaml")
        start = time.perf_counter()
        run_stages(["extract", "fuse", "fit"], study, show_progress=False)
        fitted = time.perf_counter() - start
        start = time.perf_counter()
        run_stage("evaluate", study, show_progress=False)
        first = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            outcome = run_stage("evaluate", study, force=True, show_progress=False)
            times.append(time.perf_counter() - start)
        sets = outcome.summary["sets"]
    print(f"training cases {args.train}, cohort {args.cohort} cases = {2 * args.cohort} images "
          f"(efficientnetb0 at 96 px with random weights + handcrafted); learners: every default + stack")
    print(f"extract+fuse+fit: {fitted:.1f} s; first evaluate (embeds the cohort): {first:.1f} s")
    print(f"evaluate with cached embeddings: min {min(times):.1f} s, max {max(times):.1f} s over {len(times)} run(s)")
    for name, rec in sets.items():
        print(f"  {name}: {rec['n']} cases, {rec['learner']} AUC {rec['auc']:.3f}")


if __name__ == "__main__":
    main()
