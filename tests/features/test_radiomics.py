"""The radiomics block: PyRadiomics' own numbers and names, params in the cache identity and checked at
load, degenerate ROIs refused, and an extract run writing the block with its feature names."""

import logging

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from features import radiomics
from features.backbones import (backbone_problems, build_embedder, family_of, resolve_weights, takes_params,
                                uses_mask)
from features.errors import ImageError
from features.store import read_table
from pipeline.config import validate
from pipeline.errors import ConfigError
from study_factory import run

# Every image type, so LoG and 2D wavelet names and values are checked too; a small LoG set for speed.
PARAMS = {"image_types": ["original", "log", "wavelet"], "log_sigmas": [1.0], "bin_width": 16, "resample_to": 128,
          "processes": 1}


@pytest.fixture(scope="module")
def busi(shared_data):
    frame = pd.read_csv(shared_data / "busi" / "manifest.csv", dtype=str, keep_default_na=False)
    return shared_data / "busi", frame


def _read(root, row):
    gray = cv2.imread(str(root / row["ultrasound_path"]), cv2.IMREAD_GRAYSCALE)
    mask = cv2.imread(str(root / row["mask_path"]), cv2.IMREAD_GRAYSCALE) > 0
    return gray, mask


@pytest.fixture(scope="module")
def lesion(busi):
    root, frame = busi
    return _read(root, frame[frame["label"] == "malignant"].iloc[0])


@pytest.fixture(scope="module")
def embedder():
    return build_embedder("radiomics", resolve_weights("radiomics", None, 0, PARAMS), params=PARAMS)


def _direct(gray, mask, side, bin_width):
    """PyRadiomics called as its docs say, on the image and mask resampled to ``side`` (longest side)."""
    import radiomics as pyradiomics
    import SimpleITK as sitk
    from radiomics import featureextractor

    pyradiomics.setVerbosity(logging.ERROR)
    scale = side / max(gray.shape)
    size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
    image = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    roi = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    extractor = featureextractor.RadiomicsFeatureExtractor(binWidth=bin_width, label=1)
    extractor.disableAllFeatures()
    for name in ("firstorder", "shape2D", "glcm", "glrlm", "glszm", "gldm", "ngtdm"):
        extractor.enableFeatureClassByName(name)
    extractor.enableImageTypes(Original={}, LoG={"sigma": [1.0]}, Wavelet={})
    result = extractor.execute(sitk.GetImageFromArray(image.astype(np.float32)), sitk.GetImageFromArray(roi))
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def test_features_equal_pyradiomics_own_call_on_a_real_busi_lesion(embedder, lesion):
    gray, mask = lesion
    direct = _direct(gray, mask, 128, 16)
    ours = embedder.embed(np.stack([embedder.prepare(gray, mask)]))[0]
    assert embedder.feature_names == list(direct)           # PyRadiomics' names, in its order
    np.testing.assert_allclose(ours, np.array(list(direct.values()), np.float32), rtol=1e-5, atol=1e-6)


def test_feature_names_are_pyradiomics_own_without_diagnostics(embedder):
    names = embedder.feature_names
    for expected in ("original_glcm_Contrast", "original_shape2D_Elongation", "log-sigma-1-0-mm-3D_firstorder_Mean",
                     "wavelet-LH_glszm_ZoneEntropy", "original_ngtdm_Busyness"):
        assert expected in names
    assert not [n for n in names if n.startswith("diagnostics")]
    assert {n.split("_")[0] for n in names} == {"original", "log-sigma-1-0-mm-3D", "wavelet-LL", "wavelet-LH",
                                                "wavelet-HL", "wavelet-HH"}   # a 2D wavelet: both axes


def test_block_through_build_embedder_has_one_column_per_name(embedder, lesion):
    gray, mask = lesion
    out = embedder.embed(np.stack([embedder.prepare(gray, mask), embedder.prepare(gray, None)]))
    assert family_of("radiomics") == "radiomics" and takes_params("radiomics") and uses_mask("radiomics")
    assert out.dtype == np.float32 and out.shape == (2, embedder.dim) and embedder.dim == len(embedder.feature_names)
    assert np.isfinite(out).all()
    assert not np.allclose(out[0], out[1])          # the lesion's ROI is not the whole frame's
    assert embedder.spec["params"]["bin_width"] == 16 and embedder.spec["pyradiomics-bhklab"]


def test_rows_do_not_depend_on_batch_or_process_count(busi):
    root, frame = busi
    images = [_read(root, r) for _, r in frame.iloc[[0, 500, 700]].iterrows()]
    params = {"resample_to": 96}
    one = build_embedder("radiomics", resolve_weights("radiomics", None, 0, params), params={**params, "processes": 1})
    two = build_embedder("radiomics", resolve_weights("radiomics", None, 0, params), params={**params, "processes": 2})
    stack = np.stack([one.prepare(g, m if m.any() else None) for g, m in images])
    together = two.embed(stack)
    alone = np.concatenate([one.embed(stack[i:i + 1]) for i in range(len(stack))])
    two.close()
    np.testing.assert_array_equal(together, alone)


def test_params_change_the_cache_identity_and_speed_settings_do_not():
    a = resolve_weights("radiomics", None, 0, {"bin_width": 25}).identity
    b = resolve_weights("radiomics", None, 0, {"bin_width": 10}).identity
    same = resolve_weights("radiomics", None, 0, {"bin_width": 25.0, "processes": 3,
                                                  "classes": list(reversed(radiomics.CLASSES))}).identity
    default = resolve_weights("radiomics", None, 0).identity
    assert a != b and a == same and a != default
    spelled_out = {"bin_width": radiomics.DEFAULTS["bin_width"]}
    assert default == resolve_weights("radiomics", "imagenet", 7, spelled_out).identity
    assert resolve_weights("radiomics", None, 0, {"log_sigmas": [5.0]}).identity == default   # LoG off: unused
    assert "pyradiomics-bhklab-" in a


def test_a_run_records_choice_alone_rebuilds_the_same_extractor(embedder):
    choice = resolve_weights("radiomics", None, 0, PARAMS)
    again = build_embedder("radiomics", choice)      # as explain/predict do, from the run record
    assert again.params == embedder.params and again.feature_names == embedder.feature_names


def test_bad_params_are_all_listed_at_config_load(tmp_path):
    raw = {"manifest": "m.csv", "modalities": {"ultrasound": {}},
           "extract": {"backbones": [
               {"name": "radiomics", "weights": "imagenet",
                "params": {"bin_widht": 25, "classes": ["glcm", "shape3D"], "image_types": ["log"],
                           "log_sigmas": [0], "resample_to": 8, "processes": 0}},
               {"name": "resnet50", "params": {"bin_width": 25}},
               {"name": "handcrafted", "params": "fast"}]}}
    with pytest.raises(ConfigError) as info:
        validate(raw, tmp_path)
    text = "\n".join(info.value.problems)
    assert "extract.backbones[0]: Backbone 'radiomics' takes no weights" in text
    assert "extract.backbones[0]: params.bin_widht: unknown radiomics param; did you mean 'bin_width'?" in text
    assert "extract.backbones[0]: params.classes: expected a non-empty list of firstorder, shape2D" in text
    assert "params.log_sigmas: expected a non-empty list of numbers > 0" in text
    assert "params.resample_to: expected an integer >= 32, got 8" in text
    assert "params.processes: expected null (every core) or an integer >= 1, got 0" in text
    assert "image_types" not in text                     # 'log' alone is fine
    assert "extract.backbones[1]: Backbone 'resnet50' takes no params" in text
    assert "extract.backbones[2].params: expected a mapping" in text


def test_params_read_back_from_the_resolved_study(tmp_path):
    raw = {"manifest": "m.csv", "modalities": {"ultrasound": {}},
           "extract": {"backbones": [{"name": "radiomics", "params": {"bin_width": 25, "image_types": ["original"]}}]}}
    (tmp_path / "m.csv").write_text("case_id,label,ultrasound_path\n")
    study = validate(raw, tmp_path)
    [choice] = study.extract.backbones
    assert choice.params == {"bin_width": 25, "image_types": ["original"]}
    assert choice.to_dict()["params"] == choice.params
    assert validate({**raw, "extract": {"backbones": [choice.to_dict()]}}, tmp_path).extract.backbones == [choice]
    assert backbone_problems("radiomics", None, choice.params) == []


def test_a_degenerate_roi_is_a_clear_image_error(embedder, lesion):
    gray, _ = lesion
    dot = np.zeros(gray.shape, bool)
    dot[100:103, 200:203] = True
    with pytest.raises(ImageError, match=r"lesion mask covers \d+ px .* radiomics needs at least 16 px"):
        embedder.prepare(gray, dot)


def test_without_a_mask_the_roi_is_the_frame_or_the_otsu_foreground(lesion):
    gray, _ = lesion
    frame = radiomics.resolve_params({"resample_to": 64})
    fg = radiomics.resolve_params({"resample_to": 64, "roi_without_mask": "foreground"})
    whole = radiomics.unpack(radiomics.prepare(gray, None, frame))[1]
    bright = radiomics.unpack(radiomics.prepare(gray, None, fg))[1]
    scale = 64 / max(gray.shape)
    assert whole.shape == (round(gray.shape[0] * scale), round(gray.shape[1] * scale))   # aspect kept, no padding
    assert (whole == 2).all() and 0 < (bright == 2).mean() < 1


def test_extract_writes_the_radiomics_block_for_six_busi_images(tmp_path, busi):
    root, frame = busi
    rows = frame.iloc[[0, 1, 2, 440, 441, 442]]
    manifest = pd.DataFrame({"case_id": rows["case_id"], "patient_id": rows["patient_id"], "label": rows["label"],
                             "ultrasound_path": [str(root / p) for p in rows["ultrasound_path"]],
                             "mask_path": [str(root / p) for p in rows["mask_path"]]})
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    params = {"resample_to": 128, "bin_width": 16, "processes": 1}
    study = {"study": "rad", "manifest": "manifest.csv", "output": "run", "seed": 0,
             "modalities": {"ultrasound": {"path_column": "ultrasound_path", "mask_column": "mask_path"}},
             "extract": {"backbones": [{"name": "radiomics", "params": params}], "batch_size": 4, "workers": 2}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    from pipeline.config import load_study

    loaded = load_study(tmp_path / "study.yaml")
    outcome = run(loaded, "extract")["extract"]
    assert outcome.summary["computed"] == {"ultrasound/radiomics": 6}
    table = read_table(loaded.run_dir / "features" / "ultrasound" / "radiomics.h5")
    names = build_embedder("radiomics", resolve_weights("radiomics", None, 0, params), params=params).feature_names
    assert table.feature_names == names and table.embeddings.shape == (6, len(names))
    assert table.case_ids == list(rows["case_id"]) and np.isfinite(table.embeddings).all()
    assert table.attrs["weights_identity"] == resolve_weights("radiomics", None, 0, params).identity
    study["extract"]["backbones"][0]["params"]["bin_width"] = 32        # a param change re-embeds every image
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    again = run(load_study(tmp_path / "study.yaml"), "extract")["extract"]
    assert again.summary["computed"] == {"ultrasound/radiomics": 6}
    coarser = read_table(loaded.run_dir / "features" / "ultrasound" / "radiomics.h5")
    assert not np.allclose(coarser.embeddings, table.embeddings)
