"""Tests for the handcrafted descriptor block: fixed layout, finite values, and that it sees texture
and shape differences a radiologist would call obvious."""


import cv2
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneOut, cross_val_score
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.feature_selection import VarianceThreshold
from sklearn.preprocessing import StandardScaler

from features.handcrafted import (
    DEFAULT_SIZE,
    HANDCRAFTED_VERSION,
    feature_names,
    handcrafted_features,
)

NAMES = feature_names()


def _value(vec, name):
    return float(vec[NAMES.index(name)])


def _noise_image(seed, shape=(96, 96)):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128, 40, shape), 0, 255).astype(np.uint8)


def _smooth_image(seed, shape=(96, 96)):
    """Stripes at a random angle and period, plus soft blobs: smooth, low-frequency texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    angle, period = rng.uniform(0, np.pi), rng.uniform(16, 40)
    img = 128 + 50 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    blobs = cv2.GaussianBlur(rng.normal(0, 1, shape), (0, 0), sigmaX=6)
    img += 30 * blobs / (np.abs(blobs).max() + 1e-9)
    return np.clip(img, 0, 255).astype(np.uint8)


def _disk_mask(shape=(128, 128), radius=35):
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, (shape[1] // 2, shape[0] // 2), radius, 1, -1)
    return mask.astype(bool)


def _star_mask(shape=(128, 128), spikes=12):
    """Spiculated margin: radius swinging between 15 and 45 px, like a malignant mass outline."""
    t = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    r = 30 + 15 * np.cos(spikes * t)
    pts = np.stack([shape[1] / 2 + r * np.cos(t), shape[0] / 2 + r * np.sin(t)], axis=1)
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask.astype(bool)


def test_feature_names_are_unique_and_match_vector_length():
    vec = handcrafted_features(_noise_image(0))
    assert len(NAMES) == len(set(NAMES)) == vec.shape[0]
    assert vec.dtype == np.float32 and vec.ndim == 1
    for name in ("intensity_mean", "hist_03", "glcm_contrast_d1", "lbp_07", "hog_000",
                 "shape_area_fraction", "shape_has_mask"):
        assert name in NAMES
    assert isinstance(HANDCRAFTED_VERSION, int) and DEFAULT_SIZE == 256


def test_features_are_finite_and_deterministic():
    img, mask = _noise_image(1), _disk_mask((96, 96), 20)
    first = handcrafted_features(img, mask)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, handcrafted_features(img.copy(), mask.copy()))


@pytest.mark.parametrize("size", [32, 64, 128, DEFAULT_SIZE])
@pytest.mark.parametrize("with_mask", [False, True])
def test_vector_length_is_independent_of_size_and_mask(size, with_mask):
    img = _smooth_image(2, shape=(120, 90))
    mask = _disk_mask((120, 90), 25) if with_mask else None
    assert handcrafted_features(img, mask, size=size).shape == (len(NAMES),)


def test_shape_has_mask_flags_a_non_empty_mask_only():
    img = _noise_image(3)
    assert _value(handcrafted_features(img), "shape_has_mask") == 0.0
    empty = np.zeros(img.shape, bool)
    assert _value(handcrafted_features(img, empty), "shape_has_mask") == 0.0
    assert _value(handcrafted_features(img, _disk_mask(img.shape, 20)), "shape_has_mask") == 1.0


def test_flat_image_gives_finite_features():
    flat = np.full((80, 80), 90, np.uint8)
    for mask in (None, _disk_mask((80, 80), 15), np.ones((80, 80), bool)):
        vec = handcrafted_features(flat, mask)
        assert np.isfinite(vec).all()
        assert _value(vec, "glcm_correlation_d1") == 0.0
        assert _value(vec, "intensity_std") == 0.0


@pytest.fixture(scope="module")
def noise_vs_smooth():
    images = [_noise_image(100 + i) for i in range(10)]
    images += [_smooth_image(200 + i) for i in range(10)]
    X = np.stack([handcrafted_features(img) for img in images])
    return X, np.array([0] * 10 + [1] * 10)


def test_texture_descriptors_separate_fine_noise_from_smooth_texture(noise_vs_smooth):
    X, y = noise_vs_smooth
    texture = [n.split("_")[0] in {"intensity", "hist", "glcm", "lbp"} for n in NAMES]
    model = make_pipeline(StandardScaler(), NearestCentroid())
    accuracy = cross_val_score(model, X[:, texture], y, cv=LeaveOneOut()).mean()
    assert accuracy >= 0.9


def test_whole_vector_separates_fine_noise_from_smooth_texture(noise_vs_smooth):
    # Sparse model: the 324 HOG columns vary with stripe angle and would swamp a plain distance
    # (nearest centroid on all columns scores only 0.8-1.0 across seeds).
    X, y = noise_vs_smooth
    model = make_pipeline(
        VarianceThreshold(), StandardScaler(),
        LogisticRegression(l1_ratio=1.0, C=0.5, solver="liblinear"),
    )
    accuracy = cross_val_score(model, X, y, cv=LeaveOneOut()).mean()
    assert accuracy >= 0.9


def test_shape_features_tell_a_round_mass_from_a_spiculated_one():
    img = _smooth_image(4, shape=(128, 128))
    disk = handcrafted_features(img, _disk_mask())
    star = handcrafted_features(img, _star_mask())
    assert _value(disk, "shape_circularity") > 0.9
    assert _value(disk, "shape_solidity") > 0.95
    assert _value(star, "shape_circularity") < 0.5
    assert _value(star, "shape_solidity") < 0.85
    assert _value(star, "shape_perimeter_norm") > _value(disk, "shape_perimeter_norm")


def test_dark_lesion_has_negative_ring_contrast():
    img = np.full((128, 128), 180, np.uint8)
    mask = _disk_mask()
    img[mask] = 60
    vec = handcrafted_features(img, mask)
    assert _value(vec, "lesion_ring_contrast") == pytest.approx((60 - 180) / 255, abs=0.02)


@pytest.mark.parametrize(
    ("gray", "mask"),
    [
        (np.zeros((32, 32, 3), np.uint8), None),
        (np.zeros((32, 32), np.float32), None),
        (np.zeros((32, 32), np.uint8), np.zeros((16, 16), bool)),
    ],
)
def test_rejects_wrong_input_with_a_clear_error(gray, mask):
    with pytest.raises(ValueError, match="Expected"):
        handcrafted_features(gray, mask)


def test_real_busi_images_with_masks(shared_data):
    paths = sorted((shared_data / "busi" / "images" / "benign").glob("*.png"))[:2]
    assert len(paths) == 2
    for path in paths:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        mask_path = shared_data / "busi" / "masks" / "benign" / f"{path.stem}_mask.png"
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 0
        vec = handcrafted_features(gray, mask)
        assert np.isfinite(vec).all()
        assert _value(vec, "shape_has_mask") == 1.0
        assert 0.0 < _value(vec, "shape_area_fraction") < 1.0
