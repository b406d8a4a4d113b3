"""Tests for features.preprocess: the spec, breast/ROI crops, denoising, CLAHE, square resizing."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from features.imageio import read_gray
from features.preprocess import (
    PreprocessSpec,
    breast_bbox,
    fit_square,
    fit_square_mask,
    mask_bbox,
    preprocess,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT.parent / "shared" / "data"  # real public data sets, kept beside the repo

LABEL = (slice(6, 22), slice(104, 122))  # rows, cols of the film label in `film()`


def film(size=128, seed=0):
    """A synthetic mammogram: a bright half-ellipse breast on black, plus a bright corner label."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size), np.uint8)
    cv2.ellipse(img, (0, 64), (70, 50), 0, -90, 90, color=150, thickness=-1)
    tissue = img > 0
    img[tissue] = np.clip(150 + rng.normal(0, 12, tissue.sum()), 1, 255).astype(np.uint8)
    img[LABEL] = 255
    return img


def test_breast_bbox_contains_the_breast_and_drops_the_label():
    y0, y1, x0, x1 = breast_bbox(film())
    assert (y0, x0) == (14, 0) and y1 >= 114 and 68 <= x1 <= 72
    assert x1 <= LABEL[1].start  # the label lies wholly outside the box


def test_breast_bbox_of_blank_image_is_the_whole_image():
    assert breast_bbox(np.zeros((20, 30), np.uint8)) == (0, 20, 0, 30)


def test_preprocess_otsu_crop_excludes_label_and_keeps_breast():
    img = film()
    spec = PreprocessSpec.for_modality("mammography", clahe=False)
    out, mask = preprocess(img, spec)
    assert mask is None
    assert out.shape[1] < LABEL[1].start  # cropped before the label's columns
    assert out.shape[0] > 100 and out.max() > 100  # the breast is still there
    assert (out == 255).sum() < 5  # no label pixels (255) survive, only rare noise


def test_preprocess_does_not_modify_input_and_is_deterministic():
    img = film()
    before = img.copy()
    spec = PreprocessSpec.for_modality("mammography")
    first, _ = preprocess(img, spec)
    second, _ = preprocess(img, spec)
    np.testing.assert_array_equal(img, before)
    np.testing.assert_array_equal(first, second)


def speckled(seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(100 + rng.normal(0, 20, (64, 64)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("denoise", ["median", "gaussian"])
def test_denoise_lowers_speckle_in_flat_region(denoise):
    img = speckled()
    out, _ = preprocess(img, PreprocessSpec(denoise=denoise, denoise_ksize=5))
    assert out.std() < 0.6 * img.std()
    assert abs(out.mean() - img.mean()) < 3


def test_ultrasound_defaults_median_denoise_speckle():
    img = speckled()
    spec = PreprocessSpec.for_modality("ultrasound", clahe=False)
    out, _ = preprocess(img, spec)
    np.testing.assert_array_equal(out, cv2.medianBlur(img, 5))


def test_clahe_raises_contrast_of_low_contrast_image():
    yy, xx = np.mgrid[0:64, 0:64]
    img = (110 + 8 * np.sin(xx / 4.0) * np.cos(yy / 5.0)).astype(np.uint8)
    out, _ = preprocess(img, PreprocessSpec(clahe=True, clahe_tile=4))
    assert out.std() > 2 * img.std()


def lesion(shape=(100, 100), rows=(40, 60), cols=(20, 40)):
    mask = np.zeros(shape, bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def test_mask_bbox_adds_margin_per_side_and_clips_to_image():
    assert mask_bbox(lesion(), 0.25) == (35, 65, 15, 45)
    assert mask_bbox(lesion(rows=(0, 10), cols=(90, 100)), 0.5) == (0, 15, 85, 100)
    assert mask_bbox(np.zeros((5, 5), bool), 0.1) is None


def test_roi_crop_returns_lesion_box_plus_margin_and_cropped_mask():
    img = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    spec = PreprocessSpec(roi_crop=True, roi_margin=0.25)
    out, mask = preprocess(img, spec, lesion())
    np.testing.assert_array_equal(out, img[35:65, 15:45])
    assert mask.shape == (30, 30) and mask.dtype == bool
    np.testing.assert_array_equal(mask, lesion()[35:65, 15:45])


def test_roi_crop_takes_precedence_over_breast_crop():
    spec = PreprocessSpec(roi_crop=True, roi_margin=0.0, otsu_crop=True)
    mask = lesion((128, 128), rows=(50, 70), cols=(10, 30))
    out, cropped = preprocess(film(), spec, mask)
    assert out.shape == (20, 20) and cropped.all()


def test_roi_crop_with_empty_mask_falls_back_to_breast_crop():
    spec = PreprocessSpec(roi_crop=True, otsu_crop=True)
    out, mask = preprocess(film(), spec, np.zeros((128, 128), bool))
    assert out.shape == mask.shape
    assert out.shape[1] < LABEL[1].start


def test_preprocess_rejects_mask_of_other_shape():
    with pytest.raises(ValueError, match="mask"):
        preprocess(film(), PreprocessSpec(), np.zeros((10, 10), bool))


def test_fit_square_pad_keeps_aspect_ratio_on_black_canvas():
    img = np.full((50, 100), 200, np.uint8)
    out = fit_square(img, 64, "pad")
    assert out.shape == (64, 64) and out.dtype == np.uint8
    rows = np.flatnonzero(out.any(axis=1))
    assert (rows[0], rows[-1] + 1) == (16, 48)  # 32 rows tall: 50:100 kept as 32:64
    assert (out[16:48] == 200).all() and not out[:16].any() and not out[48:].any()


def test_fit_square_stretch_fills_the_square():
    out = fit_square(np.full((50, 100), 200, np.uint8), 64, "stretch")
    assert out.shape == (64, 64) and (out == 200).all()


def test_fit_square_enlarges_small_images():
    assert fit_square(np.full((8, 4), 9, np.uint8), 32).shape == (32, 32)


def test_fit_square_mask_matches_image_geometry():
    mask = np.zeros((50, 100), bool)
    mask[:, 50:] = True
    img = np.where(mask, 255, 0).astype(np.uint8)
    out = fit_square_mask(mask, 64, "pad")
    assert out.dtype == bool and out.shape == (64, 64)
    np.testing.assert_array_equal(out, fit_square(img, 64, "pad") > 127)


def test_for_modality_defaults():
    mammo = PreprocessSpec.for_modality("mammography")
    us = PreprocessSpec.for_modality("ultrasound")
    none = PreprocessSpec.for_modality("none")
    assert mammo.otsu_crop and mammo.clahe and mammo.denoise == "none"
    assert us.denoise == "median" and us.clahe and not us.otsu_crop
    assert none == PreprocessSpec()
    assert PreprocessSpec.for_modality("ultrasound", denoise_ksize=7).denoise_ksize == 7


def test_to_dict_is_json_able_and_round_trips():
    spec = PreprocessSpec.for_modality("mammography", crop_margin=0, clahe_tile=np.int64(4))
    data = json.loads(json.dumps(spec.to_dict()))
    assert PreprocessSpec(**data) == spec
    assert data["crop_margin"] == 0.0 and isinstance(data["crop_margin"], float)


@pytest.mark.parametrize(
    "field, value",
    [
        ("kind", "mri"),
        ("denoise", "bilateral"),
        ("resize_mode", "crop"),
        ("denoise_ksize", 4),
        ("denoise_ksize", 1),
        ("crop_margin", -0.1),
        ("roi_margin", -1),
        ("clahe_clip", 0),
        ("clahe_tile", 0),
        ("otsu_crop", "yes"),
    ],
)
def test_spec_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        PreprocessSpec(**{field: value})


def test_for_modality_rejects_unknown_override():
    with pytest.raises(ValueError, match="clahe_clipp"):
        PreprocessSpec.for_modality("ultrasound", clahe_clipp=3.0)


def real(path):
    full = DATA / path
    assert full.exists(), f"the shared datasets are expected at {DATA}"
    return full


@pytest.mark.parametrize("name", ["benign_001.png", "benign_002.png"])
def test_real_ultrasound_preprocesses_with_defaults(name):
    gray = read_gray(real(f"busi/images/benign/{name}"))
    out, _ = preprocess(gray, PreprocessSpec.for_modality("ultrasound"))
    assert out.dtype == np.uint8 and out.shape == gray.shape
    assert fit_square(out, 224).shape == (224, 224)


def test_real_mammogram_crop_is_smaller_than_the_film():
    gray = read_gray(real("mini_mias/images/mdb001.png"))
    out, _ = preprocess(gray, PreprocessSpec.for_modality("mammography"))
    assert out.dtype == np.uint8 and out.ndim == 2
    assert out.size < 0.6 * gray.size  # the black background beside the breast is cut away
    assert out.mean() > gray.mean()  # what remains is mostly tissue
