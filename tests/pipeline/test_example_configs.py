"""Every example study file in configs/ validates, and its manifest passes the checks when it exists."""

from pathlib import Path

import pytest

from pipeline.config import load_study
from pipeline.manifest import load_manifest

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_the_examples_are_found():
    assert {"busi.yaml", "busi_binary.yaml", "busi_roi.yaml", "mini_mias.yaml",
            "mini_mias_malignant.yaml", "demo.yaml"} <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_example_config_loads_and_its_manifest_passes(path, shared_data):
    study = load_study(path)
    if shared_data.resolve() in study.manifest_path.parents:
        manifest = load_manifest(study)
        assert len(manifest.frame) > 0
    else:  # demo.yaml: its manifest is made by `run_pipeline.py demo`
        assert path.name == "demo.yaml"
