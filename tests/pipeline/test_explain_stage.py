"""The explain stage on a tiny run (handcrafted + a small random-weights CNN): occlusion maps of the
grid's shape for the chosen cases, the held-out probability reproduced by re-embedding, nothing redone
on a second run, and the report showing the maps (or saying they are stale)."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config import load_study, parse_override
from study_factory import catalog, make_study, report_page, run

FIT = {"learners": ["lr"], "stack_base": ["lr", "knn"], "n_boot": 100, "n_jobs": 1, "pca_components": 3,
       "ablations": []}


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    path = make_study(root, n=36, modalities=("ultrasound",), backbones=("handcrafted", "efficientnetb0"),
                      extra={"fuse": {"n_folds": 3, "test_size": 0.25}, "fit": FIT,
                             "explain": {"grid": 3, "cases": 2}})
    study = load_study(path)
    run(study, "extract", "fuse", "fit", "explain")
    return study, catalog(study).path("explain:occlusion")


def test_explain_writes_one_map_of_the_grid_shape_per_case_and_modality(explained):
    study, out = explained
    assert out == study.run_dir / "explain" / "occlusion.npz" and out.is_file()
    meta, maps = catalog(study).read("explain:occlusion")
    assert len(meta["cases"]) == 2 and [m["case_id"] for m in maps] == meta["cases"]
    design = catalog(study).design()
    assert all(design.is_test[design.frame.index.get_loc(c)] for c in meta["cases"])
    for m in maps:
        assert m["drops"].shape == (3, 3) and np.isfinite(m["drops"]).all()
        assert m["modality"] == "ultrasound" and m["backbones"] == ["handcrafted", "efficientnetb0"]
        assert m["image"].dtype == np.uint8 and m["image"].ndim == 2
        assert m["reembedded"] == pytest.approx(m["baseline"], abs=1e-4)   # same weights, same preprocessing


def test_the_maps_are_for_the_first_cases_the_shap_section_explains(explained):
    study, _ = explained
    report_page(study)
    shap_cases = pd.read_csv(study.run_dir / "reports" / "shap_cases.csv").case.astype(str).tolist()
    meta, _ = catalog(study).read("explain:occlusion")
    assert meta["cases"] == shap_cases[:2]


def test_a_second_run_with_unchanged_inputs_does_nothing(explained):
    study, out = explained
    before = out.stat().st_mtime_ns
    assert not run(study, "explain")["explain"].ran
    assert out.stat().st_mtime_ns == before


def test_the_report_shows_the_maps_and_says_when_they_are_stale(explained):
    study, _ = explained
    html = report_page(study, shap=False).read_text(encoding="utf-8")
    assert html.count('class="occlusion" data-grid="3x3"') == 2
    assert html.count("data-drop=") == 2 * 9 and "data:image/png;base64," in html
    assert 'id="occlusion-missing"' not in html
    other = load_study(study.path, [parse_override("explain.grid=4")])
    stale = report_page(other, shap=False).read_text(encoding="utf-8")
    assert "made for another fit or other settings" in stale and 'class="occlusion"' not in stale
    report_page(study, shap=False)


def test_the_maps_record_what_they_were_made_from(explained):
    study, out = explained
    with np.load(out) as f:
        meta = json.loads(str(f["meta"]))
    metrics = json.loads((study.run_dir / "models" / "metrics.json").read_text())
    assert meta["fit_fingerprint"] == metrics["fingerprint"]
    assert meta["settings"] == {"grid": 3, "cases": 2, "fill": "mean"}
