#!/usr/bin/env python3
"""Reference results on the real datasets in ../shared/data: runs the example studies end to end and
writes docs/results.md (per learner, per backbone, fused), beside the published figures they relate to.

    python scripts/reference_results.py                     # ImageNet weights (network or Keras cache)
    python scripts/reference_results.py --weights DIR       # a folder with the official Keras .h5 files
    python scripts/reference_results.py --weights random    # no ImageNet weights: says so on every line

Each study is the configs/<name>.yaml file, run into runs/reference/<name> (extract → fuse → fit →
report), so every figure on the page is reproducible with the stage commands too. Studies reuse
each other's embeddings (the cache is keyed by image content, preprocessing and weights). The page records the weights, versions, seed and timings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.storage import write_atomic  # noqa: E402
from pipeline.config import load_study  # noqa: E402
from pipeline.errors import USER_ERRORS  # noqa: E402
from pipeline.fingerprint import library_versions  # noqa: E402
from pipeline.catalog import Catalog  # noqa: E402
from pipeline.runner import run_all  # noqa: E402

STUDIES = {
    "busi": "BUSI, normal / benign / malignant (3 classes)",
    "busi_binary": "BUSI, benign vs malignant",
    "mini_mias": "mini-MIAS, abnormal vs normal (image + density)",
    "mini_mias_malignant": "mini-MIAS, malignant vs benign (image + density)",
}
LEARNER_ORDER = ("knn", "svm", "rf", "et", "mlp", "lr", "xgb", "stack")

#: Published figures the studies relate to, and why a comparison is or is not like for like.
LITERATURE = """\
| study here | published figure | source | like for like? |
|---|---|---|---|
| BUSI, 3 classes | accuracy 97.05% (MMDCNet, image-only); DenseNet-121 baseline 88.46% | A. Ahmed et al., *Deep Multi-modal Breast Cancer Detection Network*, arXiv:2504.16954 (2025) | **No.** Fine-tuned CNNs with attention, not frozen embeddings; image-wise random split, so BUSI's 110 near-duplicate groups (some across classes) can fall on both sides of it. |
| BUSI (780 images) | accuracy 90.39% (DenseNet-201 + MobileNet-v2 features → SVM, 80/20 split) | S. K. Alduraibi, *A Novel Convolutional Neural Networks-Fused Shallow Classifier for Breast Cancer Detection*, Intelligent Automation & Soft Computing 33(2), 2022, DOI 10.32604/iasc.2022.025021 | **Closest in design** (frozen ImageNet CNN features + a classical learner), but other backbones, feature selection (ReliefF) and an image-wise split without duplicate grouping; accuracy only, no interval. |
| Mini-DDSM | accuracy 90.87% with clinical data vs 79.38% image-only (MMDCNet) | Ahmed et al. 2025, as above | **Not run here:** only a 10-woman, single-class subset of Mini-DDSM is available (../shared/data/mini_ddsm_subset), enough for IO tests, not for accuracy. |
| mini-MIAS, abnormal vs normal | accuracy 0.89 (deep fusion of pretrained-CNN features, Normal vs Tumor) | X. Yu et al., *Mammographic image classification with deep fusion learning*, Scientific Reports 10, 14361 (2020), PMC7463246 | **No.** Their figure is on ROI patches around annotated lesions, voted per ROI; here whole films, split by woman. |
"""


def _study(name, weights, out_root, seed):
    overrides = [(["output"], str((out_root / name).resolve()))]
    if weights:
        overrides.append((["extract", "weights"], weights if weights in ("imagenet", "random")
                          else str(Path(weights).resolve())))
    if seed is not None:
        overrides.append((["seed"], seed))
    return load_study(REPO / "configs" / f"{name}.yaml", overrides)


def run_study(name, weights, out_root, seed, cache_dirs, report):
    """Every stage of one example study; returns (study, metrics, design meta, seconds)."""
    study = _study(name, weights, out_root, seed)
    started = time.perf_counter()
    run_all(study, skip=() if report else ("explain", "report"), options={"extract": {"cache_from": cache_dirs}})
    run = Catalog(study.run_dir)
    return study, run.read("fit:metrics"), run.design().meta, time.perf_counter() - started


def _fmt(value):
    return "–" if value is None else f"{value:.3f}"


def _ci(rec, metric):
    low, high = (rec.get("holdout_ci", {}).get(metric) or (None, None))
    return f"[{_fmt(low)}, {_fmt(high)}]"


def learner_table(metrics):
    """Main learners and the stack: CV AUC, held-out AUC with interval, accuracy, balanced accuracy."""
    lines = ["| learner | CV ROC AUC (mean ± sd) | held-out ROC AUC [95% CI] | held-out accuracy [95% CI] "
             "| held-out balanced accuracy | held-out MCC |", "|---|---|---|---|---|---|"]
    learners = metrics["learners"]
    names = [n for n in LEARNER_ORDER if n in learners] + \
            [n for n in learners if n not in LEARNER_ORDER and learners[n].get("ablation") is None]
    for n in names:
        rec = learners[n]
        cv, ho = rec["cv"].get("roc_auc", {}), rec["holdout"]
        lines.append(f"| {'**stack**' if n == 'stack' else n} | {_fmt(cv.get('mean'))} ± {_fmt(cv.get('sd'))} "
                     f"| {_fmt(ho.get('roc_auc'))} {_ci(rec, 'roc_auc')} | {_fmt(ho.get('accuracy'))} "
                     f"{_ci(rec, 'accuracy')} | {_fmt(ho.get('balanced_accuracy'))} | {_fmt(ho.get('mcc'))} |")
    return "\n".join(lines)


def ablation_table(metrics):
    """The stack refitted per backbone, per modality, images only and clinical only, beside the full stack."""
    rows = [(rec.get("ablation") or "all blocks (fused)", rec) for n, rec in metrics["learners"].items()
            if rec.get("ablation") is not None or n == "stack"]
    if len(rows) < 2:
        return "_No ablation was fitted._"
    lines = ["| stack trained on | CV ROC AUC (mean ± sd) | held-out ROC AUC [95% CI] | held-out accuracy |",
             "|---|---|---|---|"]
    for label, rec in rows:
        cv = rec["cv"].get("roc_auc", {})
        lines.append(f"| {label} | {_fmt(cv.get('mean'))} ± {_fmt(cv.get('sd'))} | "
                     f"{_fmt(rec['holdout'].get('roc_auc'))} {_ci(rec, 'roc_auc')} | "
                     f"{_fmt(rec['holdout'].get('accuracy'))} |")
    return "\n".join(lines)


def weights_line(meta):
    """What the CNN blocks were made with: the figures mean little without it."""
    blocks = meta.get("blocks", {})
    fallback = sorted(b for b, i in blocks.items() if i.get("weights_fallback") or i.get("weights") == "random")
    kinds = sorted({str(i.get("weights")) for b, i in blocks.items() if not b.endswith("/handcrafted")})
    if fallback:
        return (f"**CNN blocks made with SEEDED RANDOM weights ({', '.join(fallback)})**: these are not ImageNet "
                "features and their figures say nothing about ImageNet backbones; the `handcrafted` block is "
                "unaffected. Re-run with ImageNet weights for the real reference.")
    return f"CNN weights: {', '.join(kinds) or 'none'}."


def reading(metrics):
    """One line an analyst can check against the tables: the best held-out AUC, and how many
    held-out intervals exclude chance."""
    main = {n: r for n, r in metrics["learners"].items() if r.get("ablation") is None}
    aucs = {n: r["holdout"].get("roc_auc") for n, r in main.items()}
    best = max((n for n in aucs if aucs[n] is not None), key=lambda n: aucs[n], default=None)
    if best is None:
        return "No held-out ROC AUC could be computed."
    above = [n for n, r in main.items() if (r.get("holdout_ci", {}).get("roc_auc") or (0, 0))[0] > 0.5]
    verdict = (f"{len(above)} of {len(main)} learners have a held-out interval above chance (0.5)"
               if above else "**no learner's held-out interval excludes chance (0.5)**")
    return f"Best held-out ROC AUC: {aucs[best]:.3f} ({best}); {verdict}."


def study_section(name, study, metrics, meta, seconds):
    s = meta["summary"]
    classes = ", ".join(f"{c} {s['class_counts'].get(c, 0)}" for c in meta["classes"])
    return "\n".join([
        f"## {STUDIES[name]}", "",
        f"`configs/{name}.yaml` · {s['n_cases']} cases ({classes}); {s['n_train']} for {study.fuse.n_folds}-fold "
        f"patient-wise CV, {s['n_test']} held out once; {s['n_excluded']} excluded"
        + (f"; grouped by `{study.fuse.group_column}`" if study.fuse.group_column else "")
        + f". Positive class: {meta['positive'] or 'multi-class (macro one-vs-rest)'}. "
        f"Seed {study.seed}. Fit time {metrics.get('elapsed_seconds', 0) / 60:.1f} min"
        + (f" (this run: {seconds / 60:.1f} min, the rest came from the cache)"
           if seconds < 0.9 * metrics.get("elapsed_seconds", 0) else "") + ".", "",
        weights_line(meta), "", reading(metrics), "",
        "### Learners", "", learner_table(metrics), "",
        "### Per backbone and fused (the stack refitted on subsets of the blocks)", "", ablation_table(metrics), "",
    ])


def write_page(path, sections, args, versions, fit_seconds):
    head = [
        "# Reference results on real data", "",
        "Made by `python scripts/reference_results.py"
        + (f" --weights {args.weights}" if args.weights else "") + "` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d} ({os.cpu_count()} CPU cores; the fits took "
        f"{fit_seconds / 60:.0f} min in all, extraction comes on top). "
        "Every figure comes from the run folders under `runs/reference/` (metrics.json) and can be "
        "re-made stage by stage with `run_pipeline.py {extract,fuse,fit,report} -c configs/<study>.yaml`.", "",
        "How to read them: CV figures are mean ± sd over the patient-wise folds of the training split; "
        "held-out figures are one evaluation on patients never seen in training, with 95% bootstrap intervals. "
        "With a few hundred cases the intervals are wide: differences inside them are not evidence.", "",
        "Data: BUSI (W. Al-Dhabyani et al., Data in Brief 28 (2020) 104863) and mini-MIAS (J. Suckling et al., "
        "1994), resized copies in `../shared/data` (see their READMEs). BUSI has no patient ids: its "
        "near-duplicate groups (`dup_group`) are kept within one fold. mini-MIAS films are split by woman.", "",
    ]
    tail = ["## Published figures these relate to", "", LITERATURE,
            "Why our figures are expected to be lower than most published ones: frozen (not fine-tuned) "
            "backbones, duplicate-aware patient-wise splits, one untouched held-out split, and intervals "
            "instead of a best run.", "",
            "Why mini-MIAS whole films are hard here: each 1024 px film (512 px in the shared copy) is "
            "cropped to the breast and resized to the backbone's 224 px, so a lesion a few millimetres "
            "across covers a few pixels, and most films' abnormality is one small region. Published "
            "mini-MIAS figures mostly classify ROI patches around the annotated lesion; these studies "
            "deliberately do not crop to it, because only abnormal films have an annotated centre, so the "
            "crop itself would give the label away.", "",
            "## Versions", "", "```", json.dumps(versions, indent=1, sort_keys=True), "```", ""]
    write_atomic(path, "\n".join(head + sections + tail))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="imagenet (default, as in the configs) | random | a .h5 file or folder")
    ap.add_argument("--studies", default=",".join(STUDIES), help=f"comma-separated, from {', '.join(STUDIES)}")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "reference", help="run folders (default runs/reference)")
    ap.add_argument("--page", type=Path, default=REPO / "docs" / "results.md", help="the page to write")
    ap.add_argument("--seed", type=int, help="override the configs' seed")
    ap.add_argument("--no-report", action="store_true",
                    help="skip the occlusion maps and the HTML report of each study (the page needs neither)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.studies.split(",") if n.strip()]
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        ap.error(f"unknown studies {unknown}; choose from {', '.join(STUDIES)}")
    sections, fit_seconds = [], 0.0
    try:
        for name in names:
            print(f"reference: {name}: {STUDIES[name]}", flush=True)
            siblings = [args.out / other for other in STUDIES if other != name and (args.out / other).is_dir()]
            study, metrics, meta, seconds = run_study(name, args.weights, args.out, args.seed, siblings,
                                                      report=not args.no_report)
            sections.append(study_section(name, study, metrics, meta, seconds))
            fit_seconds += metrics.get("elapsed_seconds", 0.0)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_page(args.page, sections, args, library_versions(), fit_seconds)
    print(f"reference: wrote {args.page}; run folders in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
