"""Command line: parses, loads the study, runs stages; user errors print one message and exit 2.

Stage modules are imported only when their command runs, so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from pathlib import Path

from pipeline import __version__
from pipeline.errors import USER_ERRORS, ConfigError

log = logging.getLogger("breastfuse")

DESCRIPTION = """\
BreastFuse: compare classifiers on frozen-CNN embeddings of breast images plus clinical data.

Stages (each reads the study file and the artifacts of the stages before it):
  extract   embed every image of every modality with every backbone, cached in
            <run>/features/<modality>/<backbone>.h5 (only new or changed images are computed)
  fuse      join embeddings and the clinical table (one row per case); fix the patient-wise
            held-out split and CV folds in <run>/fused/
  fit       every learner and the stack: patient-wise CV, one held-out evaluation, saved models
            and metrics in <run>/models/
  explain   occlusion maps of the saved stack over a few held-out cases' images (re-embeds
            them; <run>/reports/occlusion.npz, shown by report)
  report    one self-contained HTML page comparing the classifiers (<run>/reports/report.html)
  predict   new cases through the run's extractors and saved models, to probabilities
  run       every stage above in order (extract, fuse, fit, explain, report), each cached
  demo      make a small synthetic study and run every stage that exists on it
  import    turn a public dataset's official layout (BUSI, mini-MIAS, Mini-DDSM, CBIS-DDSM), a
            class-per-folder tree or a clinical table + images into manifest.csv + study.yaml

A typical run:  run_pipeline.py run -c study.yaml      (or the stages one by one:
                run_pipeline.py extract -c study.yaml && run_pipeline.py fuse -c study.yaml &&
                run_pipeline.py fit -c study.yaml && run_pipeline.py report -c study.yaml)
From a public dataset:  run_pipeline.py import busi ~/Dataset_BUSI_with_GT --out studies/busi &&
                        run_pipeline.py run -c studies/busi/study.yaml
"""

EXTRACT_HELP = """\
Embed every image of every modality with every configured backbone.

The study file (YAML) names the manifest, the modalities and their preprocessing, the clinical
columns and the backbones; see configs/demo.yaml for a commented example. Flags override it.
Outputs go to <run>/features/<modality>/<backbone>.h5. A second run with unchanged inputs
computes nothing; new or changed images are the only ones embedded. A killed run resumes.

Weights: 'imagenet' (Keras downloads and caches them in ~/.keras/models, or $KERAS_HOME/models),
a local .h5 file or a folder holding the official Keras files (for machines without internet),
or 'random' (seeded; for tests only: random features are not ImageNet features).
"""


IMPORT_HELP = """\
Turn a dataset as it was downloaded into OUT/manifest.csv (one row per case, paths relative to it)
and a starter OUT/study.yaml (commented: what is a feature, what would leak the label), plus
OUT/import_notes.txt. Images stay where they are; nothing is copied. Every problem of the source
is listed at once; nothing is dropped silently (excluded files are counted and listed).

Formats (SOURCE is):
"""

IMPORT_EXAMPLES = """\
Examples:
  run_pipeline.py import busi ~/data/Dataset_BUSI_with_GT --out studies/busi
  run_pipeline.py import mini-mias ~/data/all-mias --out studies/mias
  run_pipeline.py import csv ~/study --table clinical.csv --id-column case_id \\
      --images mammography=mg/{id}.dcm --images ultrasound=us_index.csv --out studies/paired
then:  run_pipeline.py extract -c studies/busi/study.yaml   (then fuse, fit, report)
"""


def _add_import_parser(sub):
    from pipeline.importers import IMPORTERS  # noqa: PLC0415  (cheap: entries name their functions)

    formats = [textwrap.fill(f"{imp.source} {imp.summary}", width=100, initial_indent=f"  {name:<12}",
                             subsequent_indent=" " * 14, break_on_hyphens=False)
               for name, imp in IMPORTERS.items()]
    p = sub.add_parser("import", help="official dataset layout -> manifest.csv + starter study.yaml",
                       description="\n".join([IMPORT_HELP + "\n".join(formats), "", IMPORT_EXAMPLES]),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("format", choices=list(IMPORTERS), help="the source's layout (see above)")
    p.add_argument("source", type=Path, help="the dataset folder as downloaded")
    p.add_argument("--out", required=True, type=Path, help="folder for manifest.csv and study.yaml")
    p.add_argument("--modality", default="ultrasound", help="folder: the images' modality (default ultrasound)")
    p.add_argument("--table", type=Path, help="csv: the clinical table; mini-ddsm: the spreadsheet")
    p.add_argument("--id-column", default="case_id", help="csv: the case id column (default case_id)")
    p.add_argument("--label-column", default="label", help="csv: the class column (default label)")
    p.add_argument("--patient-column", help="csv: the patient column (default patient_id if present)")
    p.add_argument("--images", action="append", default=[], metavar="MODALITY=SPEC",
                   help="csv: images of one modality (repeatable; forms above)")
    p.add_argument("--images-root", type=Path, help="cbis-ddsm: where the images are (default SOURCE)")
    p.add_argument("--dup-hash", action=argparse.BooleanOptionalAction, default=True,
                   help="busi, folder: find exact and near-duplicate images and group them in dup_group (default on)")
    p.add_argument("--near-duplicates", type=float, default=0.95, metavar="CORR",
                   help="busi, folder: thumbnail correlation from which two images count as the same lesion "
                        "(default 0.95; 1 keeps exact copies only)")


def _add_study_flags(p):
    p.add_argument("-c", "--config", required=True, type=Path, help="study file (YAML)")
    p.add_argument("--manifest", type=Path, help="manifest CSV (overrides `manifest:`)")
    p.add_argument("--output", type=Path, help="run folder (overrides `output:`)")
    p.add_argument("--seed", type=int, help="seed for everything random (overrides `seed:`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any study key, e.g. --set extract.batch_size=8 (repeatable)")
    p.add_argument("--force", action="store_true", help="recompute even where the cache is valid")


def _add_extract_flags(p):
    p.add_argument("--backbones", help="comma-separated backbones, e.g. resnet50,vgg16,efficientnetb0,"
                                       "handcrafted (any keras.applications name works)")
    p.add_argument("--weights", help="imagenet | random | path to a .h5 weights file or folder")
    p.add_argument("--batch-size", type=int, help="images per forward pass (default 16; 8-32 is best on CPU)")
    p.add_argument("--workers", type=int, help="threads decoding and preprocessing images (default 2)")
    p.add_argument("--input-size", type=int, help="backbone input size in pixels (default: the backbone's own)")


def build_parser():
    parser = argparse.ArgumentParser(prog="run_pipeline.py", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"BreastFuse {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("extract", help="embed images with frozen CNNs (and handcrafted descriptors)",
                       description=EXTRACT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_study_flags(p)
    _add_extract_flags(p)

    p = sub.add_parser("fuse", help="join embeddings and clinical data; fix patient-wise split and folds",
                       description="Join the cached embeddings of every (modality, backbone) with the "
                                   "clinical table into one design (one row per case), and record the "
                                   "patient-wise held-out split and CV folds in <run>/fused/. Fits nothing.")
    _add_study_flags(p)

    p = sub.add_parser("fit", help="cross-validate, evaluate on the held-out split and save every learner",
                       description="For every learner (knn, svm, rf, et, mlp, lr, xgb) and the stack: one "
                                   "imblearn pipeline (per-block PCA, scaling, clinical encoding, SMOTE, "
                                   "estimator) fitted inside the training folds only; patient-wise CV, one "
                                   "held-out evaluation with bootstrap intervals, then the model fitted on the "
                                   "whole training split is saved in <run>/models/.")
    _add_study_flags(p)
    p.add_argument("--n-jobs", type=int, help="parallel fits (default 2)")

    p = sub.add_parser("explain", help="occlusion maps of the stack over a few held-out cases' images",
                       description="For the held-out cases the report's SHAP section explains (the first "
                                   "report.occlusion_cases of them), hide each patch of a "
                                   "report.occlusion_grid x grid over each image in turn, re-embed it with "
                                   "the run's own backbones, weights and preprocessing, and record how much "
                                   "the saved stack's probability drops. Writes <run>/reports/occlusion.npz, "
                                   "which report shows; unchanged inputs: nothing is redone. Needs the images "
                                   "and (for CNN backbones) TensorFlow.")
    _add_study_flags(p)

    p = sub.add_parser("report", help="one self-contained HTML page comparing the classifiers",
                       description="Write <run>/reports/report.html (opens offline in any browser) and a CSV "
                                   "of every table beside it: study summary and warnings, the classifier "
                                   "comparison, curves, significance tests, ablations, PCA diagnostics, "
                                   "grouped SHAP attributions of the stack with waterfalls, a TreeExplainer "
                                   "beeswarm, the occlusion maps of `explain` when present, provenance. "
                                   "Nothing is refitted.")
    _add_study_flags(p)
    p.add_argument("--hide-case-ids", action="store_true", default=None,
                   help="show cases as 'case 1..n' (also report.hide_case_ids in the study file)")
    p.add_argument("--no-shap", action="store_true", help="skip the SHAP section (faster)")

    p = sub.add_parser("run", help="every stage in order: extract, fuse, fit, explain, report",
                       description="Run extract, fuse, fit, explain and report on one study file, as the "
                                   "commands one by one would. Each stage keeps its cache, so a second run "
                                   "redoes only what changed (--force redoes all). Ends with the classifier "
                                   "comparison and the path of the report to open.")
    _add_study_flags(p)
    _add_extract_flags(p)
    p.add_argument("--n-jobs", type=int, help="parallel fits (default 2)")
    p.add_argument("--no-explain", action="store_true",
                   help="skip the occlusion maps (the slowest part after extract; the report says how to add them)")
    p.add_argument("--no-shap", action="store_true", help="skip the report's SHAP section (faster)")

    p = sub.add_parser("predict", help="probabilities for new cases from a fitted run",
                       description="Embed the new manifest's images with the run's own backbones, weights "
                                   "and preprocessing (reusing cached embeddings), apply a saved model, and "
                                   "write per-class probabilities, the predicted label and which modalities "
                                   "each case had. No label column is needed.")
    p.add_argument("--run", required=True, type=Path, help="the run folder (holding models/)")
    p.add_argument("--manifest", required=True, type=Path, help="manifest CSV of the new cases")
    p.add_argument("--out", required=True, type=Path, help="predictions CSV to write")
    p.add_argument("--model", default="stack", help="saved model to use (default: stack)")

    _add_import_parser(sub)

    p = sub.add_parser("demo", help="make the synthetic demo study and run the stages on it",
                       description=textwrap.dedent("""\
                           Make a small SYNTHETIC paired study (mammography-like and ultrasound-like
                           images, a clinical table) in --out, write its study file, and run every
                           stage that exists on it. Uses ImageNet weights when they can be had; if
                           not, it says so loudly and uses seeded random weights, recorded in every
                           artifact. Real datasets plug in through a manifest (see README.md)."""),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="demo folder (default runs/demo)")
    p.add_argument("--cases", type=int, default=120, help="number of synthetic cases (default 120)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator and the study (default 0)")
    p.add_argument("--force", action="store_true", help="recompute even where the cache is valid")
    _add_extract_flags(p)
    return parser


def _common_overrides(args):
    from pipeline.config import parse_override  # noqa: PLC0415

    pairs = [parse_override(o) for o in getattr(args, "overrides", [])]
    if getattr(args, "manifest", None):
        pairs.append((["manifest"], str(args.manifest.resolve())))
    if getattr(args, "output", None):
        pairs.append((["output"], str(args.output.resolve())))
    if getattr(args, "seed", None) is not None:
        pairs.append((["seed"], args.seed))
    return pairs


def _extract_overrides(args):
    pairs = _common_overrides(args)
    if args.backbones:
        pairs.append((["extract", "backbones"], [b.strip() for b in args.backbones.split(",") if b.strip()]))
    if args.weights:
        w = args.weights
        pairs.append((["extract", "weights"], w if w in ("imagenet", "random") else str(Path(w).resolve())))
    for flag, key in (("batch_size", "batch_size"), ("workers", "workers"), ("input_size", "input_size")):
        if getattr(args, flag) is not None:
            pairs.append((["extract", key], getattr(args, flag)))
    return pairs


def cmd_extract(args):
    from pipeline.stages.extract import run_extract  # noqa: PLC0415

    study, manifest = _study_and_manifest(args, extract_flags=True)
    report = run_extract(study, manifest, force=args.force, show_progress=not args.no_progress)
    print(f"extract: {report.total_computed} embedding(s) computed; files in {study.run_dir / 'features'}")
    return 0


def _study_and_manifest(args, extract_flags=False):
    from pipeline.config import load_study  # noqa: PLC0415
    from pipeline.manifest import load_manifest  # noqa: PLC0415

    overrides = _extract_overrides(args) if extract_flags else _common_overrides(args)
    study = load_study(args.config, overrides)
    return study, load_manifest(study)


def cmd_fuse(args):
    from pipeline.stages.fuse import run_fuse  # noqa: PLC0415

    study, manifest = _study_and_manifest(args)
    design = run_fuse(study, manifest, force=args.force)
    s = design.meta["summary"]
    print(f"fuse: {s['n_cases']} cases, {s['n_train']} training / {s['n_test']} held out, "
          f"{s['n_excluded']} excluded; design in {study.run_dir / 'fused'}")
    return 0


def cmd_fit(args):
    from pipeline.design_store import read_design  # noqa: PLC0415
    from pipeline.stages.fit import run_fit  # noqa: PLC0415

    from pipeline.config import load_study  # noqa: PLC0415

    overrides = _common_overrides(args)
    if args.n_jobs is not None:
        overrides.append((["fit", "n_jobs"], args.n_jobs))
    study = load_study(args.config, overrides)
    metrics = run_fit(study, read_design(study.run_dir), force=args.force,
                      show_progress=not args.no_progress)
    print(format_metrics_table(metrics))
    print(f"fit: models and metrics in {study.run_dir / 'models'}")
    return 0


def format_metrics_table(metrics):
    """A short text table of the main learners (the report has everything)."""
    lines = [f"{'learner':<10}{'CV AUC':>16}{'held-out AUC':>14}{'95% CI':>17}{'bal. acc':>10}"]
    for name, rec in metrics["learners"].items():
        if rec.get("ablation"):
            continue
        cv, ho = rec["cv"]["roc_auc"], rec["holdout"]
        low, high = rec["holdout_ci"]["roc_auc"]
        lines.append(f"{name:<10}{cv['mean']:>10.3f} ± {cv['sd']:.3f}{ho['roc_auc']:>14.3f}"
                     f"{f'[{low:.3f}, {high:.3f}]':>17}{ho['balanced_accuracy']:>10.3f}")
    return "\n".join(lines)


def cmd_explain(args):
    from pipeline.stages.explain import run_explain  # noqa: PLC0415

    study, manifest = _study_and_manifest(args)
    path = run_explain(study, manifest, force=args.force, show_progress=not args.no_progress)
    print(f"explain: {path}" if path else "explain: no saved stack, so no occlusion maps")
    return 0


def cmd_report(args):
    from pipeline.config import load_study  # noqa: PLC0415
    from pipeline.stages.report import run_report  # noqa: PLC0415

    study = load_study(args.config, _common_overrides(args))
    path = run_report(study, hide_case_ids=args.hide_case_ids, shap=not args.no_shap)
    print(f"report: {path}")
    return 0


def cmd_run(args):
    from pipeline.runner import run_all_stages  # noqa: PLC0415

    if args.n_jobs is not None:
        args.overrides.append(f"fit.n_jobs={args.n_jobs}")
    study, manifest = _study_and_manifest(args, extract_flags=True)
    done = run_all_stages(study, manifest, force=args.force, show_progress=not args.no_progress,
                          explain=not args.no_explain, shap=not args.no_shap)
    print(format_metrics_table(done.metrics))
    print(f"run: artifacts in {study.run_dir}; open {done.report} in a browser")
    return 0


def cmd_predict(args):
    from pipeline.stages.predict import run_predict  # noqa: PLC0415

    out = run_predict(args.run, args.manifest, args.out, model=args.model, show_progress=not args.no_progress)
    print(f"predict: {len(out)} case(s) with model '{args.model}' -> {args.out}")
    return 0


def cmd_demo(args):
    from pipeline.demo import run_demo  # noqa: PLC0415

    if args.cases < 10:
        raise ConfigError(f"--cases must be at least 10, got {args.cases}")
    return run_demo(args, _extract_overrides(args))


def cmd_import(args):
    from pipeline.importers import Options, run_import  # noqa: PLC0415

    options = Options(modality=args.modality, table=args.table, id_column=args.id_column,
                      label_column=args.label_column, patient_column=args.patient_column,
                      images=tuple(args.images), images_root=args.images_root, dup_hash=args.dup_hash,
                      near_duplicates=args.near_duplicates)
    print("\n".join(run_import(args.format, args.source, args.out, options)))
    return 0


COMMANDS = {"extract": cmd_extract, "fuse": cmd_fuse, "fit": cmd_fit, "explain": cmd_explain, "report": cmd_report,
            "run": cmd_run, "predict": cmd_predict,
            "import": cmd_import,
            "demo": cmd_demo}


def main(argv=None):
    args = build_parser().parse_args(argv)
    from pipeline.progress import setup_logging  # noqa: PLC0415

    setup_logging(-1 if args.quiet else args.verbose)
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; completed work is saved and the next run resumes", file=sys.stderr)
        return 130
