"""configs/demo.yaml is valid and says the same as the study the demo command writes."""

from pathlib import Path

import yaml

from pipeline.config import load_study
from pipeline.demo import demo_study_dict

REPO = Path(__file__).resolve().parents[2]


def test_demo_config_is_valid_and_matches_the_demo_command():
    study = load_study(REPO / "configs" / "demo.yaml")
    assert study.manifest_path == (REPO / "runs/demo/data/manifest.csv").resolve()
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    written = demo_study_dict(seed=0)
    for key in ("study", "seed", "label", "patient_column", "modalities", "clinical", "extract"):
        assert raw[key] == written[key], key
    assert raw["evaluate"]["subgroups"] == written["evaluate"]["subgroups"]
    assert [c["name"] for c in raw["evaluate"]["cohorts"]] == [c["name"] for c in written["evaluate"]["cohorts"]]


def test_every_example_study_is_valid_and_its_manifest_checks_out():
    from pipeline.manifest import load_manifest

    for path in sorted((REPO / "configs").glob("*.yaml")):
        study = load_study(path)
        if path.name != "demo.yaml":  # the demo's data is made by `run_pipeline.py demo`
            assert len(load_manifest(study).frame) > 0, path
