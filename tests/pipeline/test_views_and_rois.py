"""Several views per case (pooled mean/max, or a block per view) and lesions given as circles."""

import numpy as np
import pandas as pd
import pytest
import yaml

from features.roi import RoiShape
from pipeline.config import load_study, validate
from pipeline.errors import ConfigError, ManifestError
from study_factory import catalog, make_study, run, write_image


def _views_study(tmp_path, pool, n=10):
    """Mammography with CC and MLO columns; case c001 lacks its MLO view."""
    path = make_study(tmp_path, n=n, modalities=("mammography",))
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame = frame.rename(columns={"mammography_path": "cc_path"})
    frame["mlo_path"] = [str(write_image(tmp_path / f"images/mlo/c{i:03d}.png", seed=500 + i).relative_to(tmp_path))
                         for i in range(n)]
    frame.loc[1, "mlo_path"] = ""
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    raw = yaml.safe_load(path.read_text())
    raw["modalities"] = {"mammography": {"views": {"cc": "cc_path", "mlo": "mlo_path"}, "pool": pool}}
    raw["fuse"] = {"n_folds": 2, "test_size": 0.2}
    path.write_text(yaml.safe_dump(raw))
    return load_study(path)


def _views(study):
    table = catalog(study).read("extract:embeddings", modality="mammography", backbone="handcrafted")
    by = {}
    for case, view, row in zip(table.case_ids, table.views, table.embeddings):
        by[(case, view)] = row.astype(np.float64)
    return table, by


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_views_pool_into_one_block_over_the_views_a_case_has(tmp_path, pool):
    study = _views_study(tmp_path, pool)
    run(study, "extract", "fuse")
    table, by = _views(study)
    assert len(table.case_ids) == 19 and set(table.views) == {"cc", "mlo"}
    design = catalog(study).design()
    columns = design.meta["layout"]["blocks"]["mammography/handcrafted"]
    reduce = np.mean if pool == "mean" else np.max
    both = design.frame.loc["c002", columns].to_numpy(float)
    np.testing.assert_allclose(both, reduce([by[("c002", "cc")], by[("c002", "mlo")]], axis=0), rtol=1e-6)
    one = design.frame.loc["c001", columns].to_numpy(float)
    np.testing.assert_allclose(one, by[("c001", "cc")], rtol=1e-6)
    assert (design.frame["missing:mammography"] == 0).all()


def test_concat_gives_a_block_per_view_and_a_missing_view_its_indicator(tmp_path):
    study = _views_study(tmp_path, "concat")
    run(study, "extract", "fuse")
    _, by = _views(study)
    design = catalog(study).design()
    blocks = design.meta["layout"]["blocks"]
    assert set(blocks) == {"mammography.cc/handcrafted", "mammography.mlo/handcrafted"}
    frame = design.frame
    np.testing.assert_allclose(frame.loc["c002", blocks["mammography.mlo/handcrafted"]].to_numpy(float),
                               by[("c002", "mlo")], rtol=1e-6)
    assert frame.loc["c001", blocks["mammography.mlo/handcrafted"]].isna().all()
    assert frame.loc["c001", "missing:mammography.mlo"] == 1 and frame["missing:mammography.mlo"].sum() == 1
    assert frame["missing:mammography.cc"].sum() == 0


def test_views_fit_end_to_end_and_each_image_is_embedded_once(tmp_path):
    study = _views_study(tmp_path, "concat", n=16)
    study = study.with_overrides([(["fit", "learners"], ["lr"]), (["fit", "stack"], False)])
    outcomes = run(study, "extract", "fuse", "fit")
    assert outcomes["extract"].summary["computed"] == {"mammography/handcrafted": 31}
    held = catalog(study).read("fit:holdout_predictions")
    assert len(held) == int(catalog(study).design().is_test.sum()) and held["proba:malignant"].between(0, 1).all()
    again = run(study.with_overrides([(["modalities", "mammography", "pool"], "mean")]), "extract", "fuse")
    assert not again["extract"].ran or sum(again["extract"].summary["computed"].values()) == 0


def test_view_settings_are_checked_with_every_problem_listed(tmp_path):
    raw = {"manifest": "m.csv", "modalities": {
        "mammography": {"views": {"cc": "cc_path", "mlo": {"path_colum": "x"}}, "pool": "median",
                        "path_column": "p"}}}
    with pytest.raises(ConfigError) as err:
        validate(raw, tmp_path)
    text = str(err.value)
    assert "pool: expected one of ['mean', 'max', 'concat']" in text
    assert "give path_column per view" in text
    assert "path_colum: unknown key; did you mean 'path_column'?" in text


def _roi_study(tmp_path, n=8):
    """Ultrasound images with a bright disc; the ROI circle columns point at it."""
    path = make_study(tmp_path, n=n)
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame["x"], frame["y"], frame["r"] = "32", "30", "12"
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    raw = yaml.safe_load(path.read_text())
    raw["modalities"]["ultrasound"].update({"roi": {"circle": ["x", "y", "r"]},
                                            "preprocessing": {"roi_crop": True}})
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_circle_roi_embeds_exactly_as_the_same_lesion_given_as_a_mask_file(tmp_path):
    circle = load_study(_roi_study(tmp_path / "circle"))
    run(circle, "extract")
    masked_dir = tmp_path / "mask"
    path = _roi_study(masked_dir)
    frame = pd.read_csv(masked_dir / "manifest.csv", dtype=str, keep_default_na=False)
    mask = RoiShape("circle", ((32, 30, 12),)).mask((64, 64))
    import cv2
    cv2.imwrite(str(masked_dir / "mask.png"), mask.astype(np.uint8) * 255)
    frame["mask_path"] = "mask.png"
    frame.to_csv(masked_dir / "manifest.csv", index=False)
    raw = yaml.safe_load(path.read_text())
    raw["modalities"]["ultrasound"] = {"path_column": "ultrasound_path", "mask_column": "mask_path",
                                       "preprocessing": {"roi_crop": True}}
    path.write_text(yaml.safe_dump(raw))
    masked = load_study(path)
    run(masked, "extract")
    a = catalog(circle).read("extract:embeddings", modality="ultrasound", backbone="handcrafted")
    b = catalog(masked).read("extract:embeddings", modality="ultrasound", backbone="handcrafted")
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    whole = load_study(path).with_overrides([(["modalities", "ultrasound", "preprocessing", "roi_crop"], False)])
    run(whole, "extract")
    c = catalog(whole).read("extract:embeddings", modality="ultrasound", backbone="handcrafted")
    assert not np.array_equal(a.embeddings, c.embeddings)


def test_changing_one_rows_circle_re_embeds_only_that_image(tmp_path):
    path = _roi_study(tmp_path)
    run(load_study(path), "extract")
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame.loc[3, "r"] = "8"
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    outcome = run(load_study(path), "extract")["extract"]
    assert outcome.summary["computed"] == {"ultrasound/handcrafted": 1}


def test_bad_roi_cells_are_listed_with_line_and_column(tmp_path):
    path = _roi_study(tmp_path)
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame.loc[2, "r"] = "big"
    frame.loc[4, "x"] = "10;20"
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(ManifestError) as err:
        run(load_study(path), "extract")
    problems = "\n".join(err.value.problems)
    assert "line 4, ROI of column 'ultrasound_path'" in problems and "not a number" in problems
    assert "line 6" in problems and "column 'x' has 2 value(s)" in problems


def test_an_roi_outside_the_image_is_a_clear_error(tmp_path):
    path = _roi_study(tmp_path)
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame.loc[0, "x"] = "500"
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(ManifestError) as err:
        run(load_study(path), "extract")
    assert "lies outside the 64x64 px image" in "\n".join(err.value.problems)


def test_roi_missing_exclude_leaves_out_the_cases_without_an_roi(tmp_path):
    path = _roi_study(tmp_path, n=16)
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame.loc[[2, 5], ["x", "y", "r"]] = ""
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    raw = yaml.safe_load(path.read_text())
    raw["modalities"]["ultrasound"]["roi"]["missing"] = "exclude"
    raw["fuse"] = {"n_folds": 2, "test_size": 0.34}
    path.write_text(yaml.safe_dump(raw))
    study = load_study(path)
    run(study, "extract", "fuse")
    meta = catalog(study).design().meta
    assert {e["case_id"] for e in meta["excluded"]} == {"c002", "c005"}
    assert all("roi.missing: exclude" in e["reason"] for e in meta["excluded"])


def test_cases_dropped_by_label_are_not_embedded(tmp_path):
    """BUSI's normals have empty masks: a lesion study that drops them must not try to crop them."""
    path = _roi_study(tmp_path, n=12)
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame.loc[[0, 1, 2], "label"] = "normal"
    frame.loc[[0, 1, 2], "x"] = "900"            # an ROI outside the image: an error if it were embedded
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    raw = yaml.safe_load(path.read_text())
    raw["label"] = {"drop": ["normal"], "positive": "malignant"}
    raw["fuse"] = {"n_folds": 2, "test_size": 0.34}
    path.write_text(yaml.safe_dump(raw))
    study = load_study(path)
    run(study, "extract", "fuse")
    table = catalog(study).read("extract:embeddings", modality="ultrasound", backbone="handcrafted")
    assert sorted(table.case_ids) == [f"c{i:03d}" for i in range(3, 12)]
