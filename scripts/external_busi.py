"""An external-validation example on real images: BUSI split into two disjoint cohorts by its
near-duplicate groups (and patients), fitted on one and evaluated on the other.

    python scripts/external_busi.py [--out runs/external_busi] [--weights random]

Writes the two manifests (cohort_a.csv, cohort_b.csv, paths pointing into ../shared/data/busi), a
study file fitting cohort a (benign vs malignant, the `busi_binary` settings with efficientnetb0 +
handcrafted), runs every stage with cohort b in `evaluate.cohorts`, and prints a markdown table of
the held-out and external AUCs with the change and its interval (for docs/results.md). Both
cohorts come from one hospital, so this measures the spread between disjoint patient sets, not a
change of site: a real second site usually costs more.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
BUSI = REPO.parent / "shared" / "data" / "busi"
sys.path.insert(0, str(REPO))


def split(frame, seed=0):
    """Cohort a / b by whole groups: a near-duplicate group, else the patient."""
    group = frame["dup_group"].where(frame["dup_group"] != "", frame["patient_id"])
    names = sorted(set(group))
    rng = np.random.default_rng(seed)
    in_b = dict(zip(names, rng.random(len(names)) < 0.5))
    is_b = group.map(in_b).to_numpy(bool)
    return frame[~is_b], frame[is_b]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "external_busi")
    parser.add_argument("--weights", default="random", help="imagenet | random | a weights file (default random)")
    args = parser.parse_args()
    from pipeline.config import load_study
    from pipeline.progress import setup_logging
    from pipeline.runner import run_all

    setup_logging(-1)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(BUSI / "manifest.csv", dtype=str, keep_default_na=False)
    for column in ("ultrasound_path", "mask_path"):
        frame[column] = [str(BUSI / p) if p else "" for p in frame[column]]
    a, b = split(frame)
    a.to_csv(out / "cohort_a.csv", index=False)
    b.to_csv(out / "cohort_b.csv", index=False)
    study = {"study": "BUSI cohort a, evaluated on cohort b", "manifest": "cohort_a.csv", "output": "run", "seed": 0,
             "label": {"column": "label", "drop": ["normal"], "positive": "malignant"}, "patient_column": "patient_id",
             "modalities": {"ultrasound": {"path_column": "ultrasound_path",
                                           "preprocessing": {"kind": "ultrasound"}}},
             "extract": {"backbones": ["efficientnetb0", "handcrafted"], "weights": args.weights},
             "fuse": {"group_column": "dup_group", "test_size": 0.2, "n_folds": 5},
             "evaluate": {"cohorts": [{"name": "cohort_b", "manifest": "cohort_b.csv"}]}}
    path = out / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    run_all(load_study(path), skip=("explain",), show_progress=False)
    ev = json.loads((out / "run" / "evaluate" / "evaluation.json").read_text())
    internal, external = ev["sets"]["internal"], ev["sets"]["cohort_b"]
    print(f"cohort a: {len(a)} images, cohort b: {len(b)} images (normal cases dropped: "
          f"{external['n']} scored, {len(external['excluded'])} left out); weights: {args.weights}")
    print("| learner | held-out AUC (cohort a) | external AUC (cohort b) | change [95% CI] |")
    print("|---|---|---|---|")
    for n in ev["learners"]:
        i, e = internal["learners"][n], external["learners"][n]
        c = external["auc_change"][n]
        print(f"| {n} | {i['metrics']['roc_auc']:.3f} [{i['ci']['roc_auc'][0]:.3f}, {i['ci']['roc_auc'][1]:.3f}] "
              f"| {e['metrics']['roc_auc']:.3f} [{e['ci']['roc_auc'][0]:.3f}, {e['ci']['roc_auc'][1]:.3f}] "
              f"| {c['value']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}] |")


if __name__ == "__main__":
    main()
