"""The extract stage's cache: hit, miss, incremental, invalidation, and errors that lose nothing."""

import numpy as np
import pandas as pd
import pytest

from features.store import read_table
from types import SimpleNamespace

from pipeline.config import load_study, parse_override
from pipeline.errors import ManifestError
from study_factory import catalog, make_study, run, write_image

BACKBONES = ("efficientnetb0", "handcrafted")


def _extract(study_file, *overrides, force=False):
    """(what extract did: computed per target, targets left untouched, total computed), study."""
    study = load_study(study_file, [parse_override(o) for o in overrides])
    outcome = run(study, "extract", force=force)["extract"]
    if outcome.ran:
        computed, skipped = outcome.summary["computed"], outcome.summary["unchanged"]
    else:                               # the whole stage was unchanged: nothing computed, nothing touched
        computed = {}
        skipped = [f"{d['modality']}/{d['backbone']}" for d in catalog(study).listed("extract:embeddings")]
    return SimpleNamespace(computed=computed, skipped=skipped, total_computed=sum(computed.values())), study


@pytest.fixture
def tiny(tmp_path):
    return make_study(tmp_path, n=8, modalities=("ultrasound", "mammography"), backbones=BACKBONES)


def test_first_run_writes_one_file_per_modality_and_backbone(tiny):
    report, study = _extract(tiny)
    assert report.total_computed == 2 * 2 * 8
    for modality in ("ultrasound", "mammography"):
        for backbone, width in (("efficientnetb0", 1280), ("handcrafted", None)):
            table = read_table(study.run_dir / "features" / modality / f"{backbone}.h5")
            assert table.case_ids == [f"c{i:03d}" for i in range(8)]
            assert table.embeddings.dtype == np.float32
            assert width is None or table.embeddings.shape == (8, width)
            assert table.attrs["modality"] == modality and table.attrs["backbone"] == backbone
            assert table.attrs["fingerprint"] and "numpy" in table.attrs["versions"]
    assert read_table(study.run_dir / "features/ultrasound/handcrafted.h5").feature_names


def test_second_run_on_unchanged_inputs_computes_nothing_and_leaves_files_alone(tiny):
    _, study = _extract(tiny)
    path = study.run_dir / "features/ultrasound/efficientnetb0.h5"
    before = path.stat().st_mtime_ns
    report, _ = _extract(tiny)
    assert report.total_computed == 0
    assert len(report.skipped) == 4
    assert path.stat().st_mtime_ns == before


def test_added_rows_are_the_only_ones_computed(tiny, tmp_path):
    first, study = _extract(tiny)
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    extra = []
    for i in range(8, 11):
        write_image(tmp_path / f"images/ultrasound/c{i:03d}.png", seed=500 + i)
        extra.append({**frame.iloc[0].to_dict(), "case_id": f"c{i:03d}", "patient_id": f"p{i}",
                      "ultrasound_path": f"images/ultrasound/c{i:03d}.png", "mammography_path": ""})
    pd.concat([frame, pd.DataFrame(extra)]).to_csv(tmp_path / "manifest.csv", index=False)
    old = read_table(study.run_dir / "features/ultrasound/efficientnetb0.h5")
    report, _ = _extract(tiny)
    assert report.computed == {"ultrasound/efficientnetb0": 3, "ultrasound/handcrafted": 3}
    assert sorted(report.skipped) == ["mammography/efficientnetb0", "mammography/handcrafted"]
    new = read_table(study.run_dir / "features/ultrasound/efficientnetb0.h5")
    assert len(new.case_ids) == 11
    np.testing.assert_array_equal(new.embeddings[:8], old.embeddings)


def test_a_changed_image_is_recomputed(tiny, tmp_path):
    _extract(tiny)
    write_image(tmp_path / "images/ultrasound/c003.png", seed=999)
    report, _ = _extract(tiny)
    assert report.computed["ultrasound/efficientnetb0"] == 1


def test_changing_preprocessing_recomputes_that_modality_only(tiny):
    _extract(tiny)
    report, _ = _extract(tiny, "modalities.ultrasound.preprocessing.clahe_clip=3.0")
    assert report.computed == {"ultrasound/efficientnetb0": 8, "ultrasound/handcrafted": 8}


def test_changing_weights_or_input_size_recomputes_that_backbone(tiny):
    _extract(tiny)
    report, _ = _extract(tiny, "extract.input_size=40")
    assert report.computed["mammography/efficientnetb0"] == 8
    report, _ = _extract(tiny, "extract.input_size=40", "seed=3")
    assert report.computed["ultrasound/efficientnetb0"] == 8


def test_force_recomputes_everything(tiny):
    _extract(tiny)
    report, _ = _extract(tiny, force=True)
    assert report.total_computed == 32


def test_bad_images_are_listed_and_everything_else_is_saved(tiny, tmp_path):
    (tmp_path / "images/ultrasound/c002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "images/ultrasound/c005.png").write_bytes(b"\x89PNG\r\n\x1a\n broken too")
    with pytest.raises(ManifestError) as info:
        _extract(tiny)
    problems = info.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("line 4, ultrasound:") and "c002.png" in problems[0]
    assert problems[1].startswith("line 7, ultrasound:")
    run = tmp_path / "run" / "features"
    saved = run / ".checkpoints"                       # nothing is committed until every image is embedded
    assert len(read_table(saved / "mammography/efficientnetb0.h5").case_ids) == 8
    partial = read_table(saved / "ultrasound/efficientnetb0.h5")
    assert len(partial.case_ids) == 6
    assert not (run / "ultrasound/efficientnetb0.h5").exists() and not (run / "stage.json").exists()
    write_image(tmp_path / "images/ultrasound/c002.png", seed=2)
    write_image(tmp_path / "images/ultrasound/c005.png", seed=5)
    report, _ = _extract(tiny)
    assert report.computed == {"ultrasound/efficientnetb0": 2, "ultrasound/handcrafted": 2}
    assert not (saved / "ultrasound/efficientnetb0.h5").exists()
    assert (run / "mammography/efficientnetb0.h5").is_file() and (run / "ultrasound/efficientnetb0.h5").is_file()


def test_embeddings_do_not_depend_on_which_run_computed_them(tiny, tmp_path):
    """Incremental results equal a from-scratch run (same keys, same numbers)."""
    _, study = _extract(tiny, "extract.batch_size=3")
    report, _ = _extract(tiny, "output=fresh", "extract.batch_size=3")
    assert report.total_computed == 32
    a = read_table(study.run_dir / "features/mammography/efficientnetb0.h5")
    b = read_table(tmp_path / "fresh/features/mammography/efficientnetb0.h5")
    assert a.keys == b.keys
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
