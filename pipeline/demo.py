"""The built-in demo: synthetic data, its study file, and every stage, in one command."""

from __future__ import annotations

import logging
from pathlib import Path

from features.demo import DEMO_CLINICAL_COLUMNS, make_demo_study
from pipeline.config import apply_overrides, dump_study, validate
from features.backbones import DEFAULT_BACKBONES

log = logging.getLogger(__name__)


def demo_study_dict(seed=0):
    """The demo's study settings; configs/demo.yaml holds the same, commented."""
    return {
        "study": "demo (synthetic data)",
        "manifest": "data/manifest.csv",
        "output": ".",
        "seed": seed,
        "label": {"column": "label", "positive": "malignant"},
        "patient_column": "patient_id",
        "modalities": {"mammography": {"path_column": "mammography_path"},
                       "ultrasound": {"path_column": "ultrasound_path"}},
        "clinical": dict(DEMO_CLINICAL_COLUMNS),
        "extract": {"backbones": list(DEFAULT_BACKBONES), "weights": "imagenet",
                    "allow_random_fallback": True},
        "evaluate": {"cohorts": [{"name": "site_b", "manifest": "site_b/manifest.csv"}],
                     "subgroups": ["density", "age", "family_history"], "subgroup_min_n": 10},
    }


SITE_B_SHARE = 2    # site b has half as many cases as the demo (at least 20)


def _make_data(out, cases, seed):
    """Generate the data (the demo's site and a second, shifted site to evaluate on) unless the same
    cases and seed are already there (it is deterministic)."""
    for folder, n, site in (("data", cases, "a"), ("site_b", max(20, cases // SITE_B_SHARE), "b")):
        data = out / folder
        stamp = data / ".generated"
        want = f"cases={n} seed={seed} site={site}"
        if stamp.is_file() and stamp.read_text() == want and (data / "manifest.csv").is_file():
            continue
        log.info("making %d synthetic demo cases (site %s) in %s", n, site, data)
        make_demo_study(data, n_cases=n, seed=seed, site=site)
        stamp.write_text(want)


def run_demo(args, overrides):
    from pipeline.console import format_metrics_table  # noqa: PLC0415
    from pipeline.runner import run_all  # noqa: PLC0415
    from pipeline.stages import STAGES  # noqa: PLC0415

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _make_data(out, args.cases, args.seed)
    raw = apply_overrides(demo_study_dict(args.seed), overrides)
    study_file = out / "study.yaml"
    dump_study(raw, study_file)
    study = validate(raw, out, path=study_file)
    done = run_all(study, force=args.force, show_progress=not args.no_progress)
    extract, fuse, fit = done["extract"].summary, done["fuse"].summary, done["fit"].summary
    print(f"demo: synthetic study in {out / 'data'} (NOT real patients)")
    print(f"demo: extract wrote {len(study.modalities) * len(study.backbones)} embedding file(s) under "
          f"{out / 'features'}")
    print(f"demo: fuse: {fuse['n_train']} training / {fuse['n_test']} held-out cases; fit: models and "
          f"metrics in {out / 'models'}")
    print(format_metrics_table(fit["headline"]))
    print(STAGES["evaluate"].message(done["evaluate"]))
    print(f"demo: report: open {done['report'].summary['page']} in a browser")
    if extract["fallback"]:
        print("demo: WARNING: ImageNet weights were not available; these embeddings come from SEEDED "
              "RANDOM weights (" + ", ".join(sorted({f.split('/')[1] for f in extract["fallback"]})) + "). "
              "Put the Keras weight files in ~/.keras/models or pass --weights to use real ones.")
    print(f"demo: re-run with: python run_pipeline.py run --config {study_file}  (or one stage: "
          f"{', '.join(done)})")
    return 0
