"""Command line: parses, loads the study, hands stages to the runner; user errors print one message
and exit 2. Stage subcommands and their flags come from the stage registry, import formats from the
importer registry; heavy modules are imported only when their command runs, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from pathlib import Path

from pipeline import __version__
from pipeline.errors import USER_ERRORS, ConfigError
from pipeline.stages import RUN_ORDER, STAGES

log = logging.getLogger("breastfuse")

DESCRIPTION = """\
BreastFuse: compare classifiers on frozen-CNN embeddings of breast images plus clinical data.

Stages (each reads the study file and what the stages before it committed in the run folder):
{stages}
  run       every stage above in order, each cached: exactly the out-of-date ones are redone
  predict   new cases through the run's extractors and saved models, to probabilities
  demo      make a small synthetic study and run every stage on it
  import    turn a public dataset's official layout (BUSI, mini-MIAS, Mini-DDSM, CBIS-DDSM), a
            class-per-folder tree or a clinical table + images into manifest.csv + study.yaml

A typical run:  run_pipeline.py run -c study.yaml      (or the stages one by one:
                run_pipeline.py extract -c study.yaml && run_pipeline.py fuse -c study.yaml && ...)
A stage whose inputs changed since it ran is out of date: the stages after it refuse to use it
and say which to re-run. One process at a time writes a run folder; a second one waits.
From a public dataset:  run_pipeline.py import busi ~/Dataset_BUSI_with_GT --out studies/busi &&
                        run_pipeline.py run -c studies/busi/study.yaml
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
    p.add_argument("--level", choices=("image", "breast"), default="image",
                   help="mini-ddsm, cbis-ddsm, long: one case per image (default), or per breast: its CC and MLO "
                        "views as one case (label malignant if either view's finding is)")


EVALUATE_RUN = ("\n\nOr, on a fitted run without its study file: evaluate --run DIR --manifest external.csv "
                "--name site_b adds the cohort to the run's recorded cohorts, scores it and writes a page of its "
                "own, <run>/evaluate/site_b/page.html. To show cohorts in the run's report, list them in the study "
                "file (evaluate.cohorts).")


def _add_study_flags(p, config_required=True):
    p.add_argument("-c", "--config", required=config_required, type=Path, help="study file (YAML)")
    p.add_argument("--manifest", type=Path, help="manifest CSV (overrides `manifest:`)")
    p.add_argument("--output", type=Path, help="run folder (overrides `output:`)")
    p.add_argument("--seed", type=int, help="seed for everything random (overrides `seed:`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any study key, e.g. --set extract.batch_size=8 (repeatable)")
    p.add_argument("--force", action="store_true", help="recompute even where the cache is valid")
    p.add_argument("--no-wait", action="store_true",
                   help="if another process is using the run folder, stop (exit 2) instead of waiting")


def _add_stage_flags(p, stages):
    seen = set()
    for stage in stages:
        for flag in stage.flags:
            if flag.option in seen:
                continue
            seen.add(flag.option)
            if flag.action:
                p.add_argument(flag.option, action=flag.action, help=flag.help)
            else:
                p.add_argument(flag.option, type=flag.type, help=flag.help, metavar=flag.metavar)


TRUST_PICKLE = ("load models/*.joblib that an older BreastFuse pickled: a pickle runs whatever it holds, so only "
                "for a run folder you made yourself (re-running fit saves them as files of known types only)")


def _loads_models(stage):
    return "fit:model" in stage.reads


def _add_trust_pickle(p, stages):
    if any(_loads_models(s) for s in stages):
        p.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE)


def _model_options(args, stages):
    """``--trust-pickle`` as the runtime option of the stages that load saved models (no result
    depends on it, so it stays out of the study and its fingerprints)."""
    if not getattr(args, "trust_pickle", False):
        return {}
    return {s.name: {"trust_pickle": True} for s in stages if _loads_models(s)}


def _stage_list():
    return "\n".join(textwrap.fill(stage.summary, width=96, initial_indent=f"  {name:<9} ",
                                   subsequent_indent=" " * 12) for name, stage in STAGES.items())


def build_parser():
    parser = argparse.ArgumentParser(prog="run_pipeline.py", description=DESCRIPTION.format(stages=_stage_list()),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"BreastFuse {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, stage in STAGES.items():
        p = sub.add_parser(name, help=stage.summary, description=stage.description + (
                               EVALUATE_RUN if name == "evaluate" else ""),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_study_flags(p, config_required=name != "evaluate")
        if name == "evaluate":
            p.add_argument("--run", type=Path, help="a fitted run folder (instead of -c): evaluate it on --manifest")
            p.add_argument("--name", help="with --run: the cohort's name (its results go to <run>/evaluate/<name>/)")
        _add_stage_flags(p, [stage])
        _add_trust_pickle(p, [stage])

    p = sub.add_parser("run", help="every stage in order: " + ", ".join(RUN_ORDER),
                       description="Run " + ", ".join(RUN_ORDER) + " on one study file, as the commands one by "
                                   "one would, under one lock. Each stage keeps its cache, so a second run redoes "
                                   "exactly the stages whose inputs changed (--force redoes all). Ends with the "
                                   "classifier comparison and the path of the report to open.")
    _add_study_flags(p)
    _add_stage_flags(p, STAGES.values())
    _add_trust_pickle(p, STAGES.values())
    p.add_argument("--no-explain", action="store_true",
                   help="skip the occlusion maps (the slowest part after extract; the report says how to add them)")

    p = sub.add_parser("predict", help="probabilities for new cases from a fitted run",
                       description="Embed the new manifest's images with the run's own backbones, weights "
                                   "and preprocessing (as its run record says; cached embeddings reused), apply a "
                                   "saved model, and write per-class probabilities, the predicted label and which "
                                   "modalities each case had. No label column is needed. Refuses a run whose fit "
                                   "is out of date.")
    p.add_argument("--run", required=True, type=Path, help="the run folder (holding models/)")
    p.add_argument("--manifest", required=True, type=Path, help="manifest CSV of the new cases")
    p.add_argument("--out", required=True, type=Path, help="predictions CSV to write")
    p.add_argument("--model", default="stack", help="saved model to use (default: stack)")
    p.add_argument("--no-wait", action="store_true", help="stop instead of waiting for a busy run folder")
    p.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE)

    _add_import_parser(sub)

    p = sub.add_parser("demo", help="make the synthetic demo study and run the stages on it",
                       description=textwrap.dedent("""\
                           Make a small SYNTHETIC paired study (mammography-like and ultrasound-like
                           images, a clinical table) in --out, write its study file, and run every
                           stage on it. Uses ImageNet weights when they can be had; if not, it says so
                           loudly and uses seeded random weights, recorded in every artifact. Real
                           datasets plug in through a manifest (see README.md)."""),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="demo folder (default runs/demo)")
    p.add_argument("--cases", type=int, default=120, help="number of synthetic cases (default 120)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator and the study (default 0)")
    p.add_argument("--force", action="store_true", help="recompute even where the cache is valid")
    _add_stage_flags(p, [STAGES["extract"]])
    return parser


def study_overrides(args, stages):
    """The (keys, value) overrides a command's flags make of study keys, in a fixed order."""
    from pipeline.config import parse_override  # noqa: PLC0415

    pairs = [parse_override(o) for o in getattr(args, "overrides", [])]
    if getattr(args, "manifest", None):
        pairs.append((["manifest"], str(args.manifest.resolve())))
    if getattr(args, "output", None):
        pairs.append((["output"], str(args.output.resolve())))
    if getattr(args, "seed", None) is not None:
        pairs.append((["seed"], args.seed))
    seen = set()
    for stage in stages:
        for flag in stage.flags:
            value = getattr(args, flag.option.lstrip("-").replace("-", "_"), None)
            if flag.option in seen or value is None or value is False:
                continue
            seen.add(flag.option)
            pairs.append((flag.key.split("."), flag.value if flag.action else value))
    return pairs


def _load(args, stages):
    from pipeline.config import load_study  # noqa: PLC0415

    return load_study(args.config, study_overrides(args, stages))


def _print_outcome(outcome):
    stage = STAGES[outcome.stage]
    line = stage.message(outcome) if stage.message else f"{outcome.stage}: results in {outcome.folder}"
    print(line if outcome.ran else f"{line}  (unchanged: nothing to do)")


def cmd_stage(args):
    from pipeline.runner import run_stage  # noqa: PLC0415

    stage = STAGES[args.command]
    outcome = run_stage(stage.name, _load(args, [stage]), force=args.force, show_progress=not args.no_progress,
                        wait=not args.no_wait, options=_model_options(args, [stage]))
    _print_outcome(outcome)
    return 0


def cmd_evaluate(args):
    if args.run is None:
        if args.config is None or args.name:
            raise ConfigError("evaluate: give -c STUDY (the cohorts of evaluate.cohorts), or --run DIR --manifest "
                              "CSV --name NAME (one more cohort for a fitted run)")
        return cmd_stage(args)
    from pipeline.evaluate_command import evaluate_cohort  # noqa: PLC0415

    if args.config is not None or args.manifest is None or not args.name:
        raise ConfigError("evaluate --run DIR needs --manifest CSV and --name NAME (and no -c)")
    stage = STAGES["evaluate"]
    extra = [pair for pair in study_overrides(args, [stage]) if pair[0] != ["manifest"]]
    outcome, page = evaluate_cohort(args.run, args.manifest, args.name, extra, force=args.force,
                                    show_progress=not args.no_progress, wait=not args.no_wait,
                                    options=_model_options(args, [stage]).get("evaluate", {}))
    _print_outcome(outcome)
    print(f"evaluate: page of cohort '{args.name}': {page}")
    return 0


def cmd_run(args):
    from pipeline.runner import run_all  # noqa: PLC0415

    study = _load(args, STAGES.values())
    done = run_all(study, skip=("explain",) if args.no_explain else (), force=args.force,
                   show_progress=not args.no_progress, wait=not args.no_wait,
                   options=_model_options(args, STAGES.values()))
    print(STAGES["fit"].message(done["fit"]))
    print(f"run: artifacts in {study.run_dir}; open {done['report'].summary['page']} in a browser")
    return 0


def cmd_predict(args):
    from pipeline.predict import run_predict  # noqa: PLC0415

    out = run_predict(args.run, args.manifest, args.out, model=args.model, show_progress=not args.no_progress,
                      wait=not args.no_wait, trust_pickle=args.trust_pickle)
    print(f"predict: {len(out)} case(s) with model '{args.model}' -> {args.out}")
    return 0


def cmd_demo(args):
    from pipeline.demo import run_demo  # noqa: PLC0415

    if args.cases < 10:
        raise ConfigError(f"--cases must be at least 10, got {args.cases}")
    return run_demo(args, study_overrides(args, [STAGES["extract"]]))


def cmd_import(args):
    from pipeline.importers import Options, run_import  # noqa: PLC0415

    options = Options(modality=args.modality, table=args.table, id_column=args.id_column,
                      label_column=args.label_column, patient_column=args.patient_column,
                      images=tuple(args.images), images_root=args.images_root, dup_hash=args.dup_hash,
                      near_duplicates=args.near_duplicates, level=args.level)
    print("\n".join(run_import(args.format, args.source, args.out, options)))
    return 0


COMMANDS = {**{name: cmd_stage for name in STAGES}, "evaluate": cmd_evaluate, "run": cmd_run, "predict": cmd_predict, "import": cmd_import,
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
        print("interrupted; what was committed is intact and the next run resumes", file=sys.stderr)
        return 130
