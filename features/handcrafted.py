"""Handcrafted intensity, texture and shape descriptors: a feature block beside the CNN backbones
(as in Bashir et al.), fixed-length and cheap, so it caches and fuses like any embedding."""

from __future__ import annotations

import math

import numpy as np

# OpenCV and scikit-image are imported inside the functions that use them: the version and the
# feature names (what a study check or a fingerprint needs) must not cost those libraries.

# Bump when any feature's meaning changes: it is part of the cache key of stored blocks.
HANDCRAFTED_VERSION = 1
DEFAULT_SIZE = 256

_PERCENTILES = (5, 25, 50, 75, 95)
_HIST_BINS = 16
_GLCM_LEVELS = 32
_GLCM_DISTANCES = (1, 3)
_GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
_GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
_LBP_POINTS, _LBP_RADIUS = 8, 1
_LBP_BINS = _LBP_POINTS + 2  # "uniform" codes 0..P+1
_HOG_SIZE = 64
_HOG_ORIENTATIONS, _HOG_CELL, _HOG_BLOCK = 9, 16, 2
_RING_PX = 10
_HU_EPS = 1e-30
_MIN_SIZE = 16

_SHAPE_NAMES = (
    "shape_has_mask",
    "shape_area_fraction",
    "shape_perimeter_norm",
    "shape_circularity",
    "shape_solidity",
    "shape_extent",
    "shape_eccentricity",
    "shape_aspect_ratio",
) + tuple(f"shape_hu_{i}" for i in range(1, 8))
_LESION_NAMES = ("lesion_mean", "lesion_std", "lesion_ring_contrast")


def _hog_length() -> int:
    cells = _HOG_SIZE // _HOG_CELL
    blocks = cells - _HOG_BLOCK + 1
    return blocks * blocks * _HOG_BLOCK * _HOG_BLOCK * _HOG_ORIENTATIONS


def feature_names() -> list[str]:
    """Column names in vector order; the fused design matrix and SHAP plots show these."""
    names = [f"intensity_{s}" for s in ("mean", "std", "skewness", "kurtosis")]
    names += [f"intensity_p{p:02d}" for p in _PERCENTILES]
    names.append("intensity_entropy")
    names += [f"hist_{i:02d}" for i in range(_HIST_BINS)]
    names += [f"glcm_{p.lower()}_d{d}" for p in _GLCM_PROPS for d in _GLCM_DISTANCES]
    names += [f"lbp_{i:02d}" for i in range(_LBP_BINS)]
    names += [f"hog_{i:03d}" for i in range(_hog_length())]
    names += list(_SHAPE_NAMES)
    names += list(_LESION_NAMES)
    return names


def handcrafted_features(
    gray: np.ndarray, mask: np.ndarray | None = None, size: int = DEFAULT_SIZE
) -> np.ndarray:
    """Describe one preprocessed grayscale image (and optional lesion mask) as a float32 vector.

    The image is resized to ``size``×``size`` first so descriptors are comparable across images;
    the vector length never depends on ``size`` or on whether a mask is given. Intensity, GLCM and
    LBP statistics are whole-image; the mask only drives the shape and lesion features, which are
    zeros when there is no (non-empty) mask.
    """
    img, roi = _validated_resized(gray, mask, size)
    # An upscaled outline is a staircase of source pixels; fit the polygon to one source pixel.
    tolerance = max(1.0, size / min(gray.shape))
    parts = [
        _intensity_and_histogram(img),
        _glcm(img),
        _lbp(img),
        _hog(img),
        _shape(roi, tolerance),
        _lesion(img, roi),
    ]
    vec = np.nan_to_num(np.concatenate(parts).astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    assert np.isfinite(vec).all()
    return vec


def _validated_resized(gray, mask, size):
    import cv2  # noqa: PLC0415

    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.dtype != np.uint8 or min(gray.shape) == 0:
        raise ValueError(
            f"Expected a non-empty 2-D uint8 grayscale image, got shape {gray.shape} "
            f"dtype {gray.dtype} instead."
        )
    if int(size) != size or size < _MIN_SIZE:
        raise ValueError(f"Expected an integer size >= {_MIN_SIZE}, got {size!r}.")
    size = int(size)
    shrink = gray.shape[0] >= size and gray.shape[1] >= size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    img = cv2.resize(gray, (size, size), interpolation=interp)
    if mask is None:
        return img, None
    mask = np.asarray(mask)
    if mask.shape != gray.shape:
        raise ValueError(
            f"Expected a mask of the image's shape {gray.shape}, got shape {mask.shape} instead."
        )
    # Area-average then threshold when shrinking, so thin spicules are not lost to aliasing.
    soft = cv2.resize((mask != 0).astype(np.float32), (size, size), interpolation=interp)
    roi = (soft >= 0.5).astype(np.uint8)
    return img, (roi if roi.any() else None)


def _intensity_and_histogram(img):
    """Moments and percentiles from the 256-bin histogram: exact for uint8 and much faster."""
    counts = np.bincount(img.ravel(), minlength=256).astype(np.float64)
    p = counts / counts.sum()
    v = np.arange(256) / 255.0
    mean = float(p @ v)
    d = v - mean
    var = float(p @ d**2)
    std = math.sqrt(var)
    if std > 1e-12:
        skew = float(p @ d**3) / std**3
        kurt = float(p @ d**4) / var**2 - 3.0  # excess: 0 for a Gaussian
    else:
        skew = kurt = 0.0
    cdf = np.cumsum(p)
    # Lower percentile (smallest level whose CDF reaches q): deterministic on discrete levels.
    pct = [np.searchsorted(cdf, q / 100.0 - 1e-12) / 255.0 for q in _PERCENTILES]
    nz = p[p > 0]
    entropy = max(0.0, float(-(nz * np.log2(nz)).sum()) / 8.0)  # bits / log2(256) -> [0, 1]
    hist = counts.reshape(_HIST_BINS, -1).sum(axis=1) / counts.sum()
    return np.concatenate([[mean, std, skew, kurt], pct, [entropy], hist])


def _glcm(img):
    """Haralick statistics per distance, averaged over angles so rotation matters less."""
    from skimage.feature import graycomatrix, graycoprops  # noqa: PLC0415

    q = (img // (256 // _GLCM_LEVELS)).astype(np.uint8)
    glcm = graycomatrix(
        q, list(_GLCM_DISTANCES), list(_GLCM_ANGLES),
        levels=_GLCM_LEVELS, symmetric=True, normed=True,
    )
    flat = q.min() == q.max()
    out = []
    for prop in _GLCM_PROPS:
        vals = graycoprops(glcm, prop).mean(axis=1)
        if prop == "contrast":
            vals = vals / (_GLCM_LEVELS - 1) ** 2  # scale to [0, 1]
        elif prop == "dissimilarity":
            vals = vals / (_GLCM_LEVELS - 1)
        elif prop == "correlation" and flat:
            vals = np.zeros_like(vals)  # undefined on a flat image; skimage versions disagree
        out.append(vals)
    return np.concatenate(out)


def _lbp(img):
    from skimage.feature import local_binary_pattern  # noqa: PLC0415

    codes = local_binary_pattern(img, _LBP_POINTS, _LBP_RADIUS, method="uniform")
    counts = np.bincount(codes.astype(np.intp).ravel(), minlength=_LBP_BINS)
    return counts / counts.sum()


def _hog(img):
    """HOG on a fixed 64×64 thumbnail: coarse layout of edges at a length independent of size."""
    import cv2  # noqa: PLC0415

    from skimage.feature import hog  # noqa: PLC0415

    small = cv2.resize(img, (_HOG_SIZE, _HOG_SIZE), interpolation=cv2.INTER_AREA)
    return hog(
        small,
        orientations=_HOG_ORIENTATIONS,
        pixels_per_cell=(_HOG_CELL, _HOG_CELL),
        cells_per_block=(_HOG_BLOCK, _HOG_BLOCK),
        feature_vector=True,
    )


def _largest_component(roi):
    import cv2  # noqa: PLC0415

    _, labels, stats, _ = cv2.connectedComponentsWithStats(roi, connectivity=8)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == biggest).astype(np.uint8)


def _shape(roi, tolerance=1.0):
    """Shape of the largest mask component (margins: round benign vs spiculated malignant)."""
    import cv2  # noqa: PLC0415

    out = np.zeros(len(_SHAPE_NAMES))
    if roi is None:
        return out
    comp = _largest_component(roi)
    contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=len)
    # The raw pixel contour is a staircase that overstates the perimeter (a disk would read ~0.88
    # circular); a polygon fit to the pixel grid removes it but keeps spicules longer than that.
    poly = cv2.approxPolyDP(contour, tolerance, closed=True)
    if len(poly) < 3:
        poly = contour
    pixels = float(comp.sum())
    area = max(cv2.contourArea(poly), 1.0)  # floor: a 1-2 px blob has zero polygon area
    perimeter = max(cv2.arcLength(poly, closed=True), 1.0)
    hull_area = max(cv2.contourArea(cv2.convexHull(poly)), area)
    _, _, w, h = cv2.boundingRect(contour)
    (_, _), (rw, rh), _ = cv2.minAreaRect(contour)
    m = cv2.moments(comp, binaryImage=True)
    hu = cv2.HuMoments(m).ravel()

    out[0] = 1.0
    out[1] = pixels / comp.size
    out[2] = perimeter / math.sqrt(area) / (2 * math.sqrt(math.pi))  # 1 for a circle
    out[3] = min(4 * math.pi * area / perimeter**2, 1.0)
    out[4] = area / hull_area
    out[5] = pixels / (w * h)
    out[6] = _eccentricity(m)
    out[7] = min(rw, rh) / max(rw, rh) if max(rw, rh) > 0 else 1.0
    out[8:] = _signed_log(hu)
    return out


def _signed_log(h):
    """sign(h)·log10(1 + |h|/eps): the usual signed log of Hu moments, made continuous at 0.

    Plain sign·log10|h| jumps by ~60 when a symmetric shape's higher moments (rounding noise,
    ~1e-30 and below, of either sign) cross zero; here that noise maps to ~0 and any moment above
    eps keeps its log scale (≈ log10|h| + 30).
    """
    return np.sign(h) * np.log10(1.0 + np.abs(h) / _HU_EPS)


def _eccentricity(m):
    """Eccentricity of the ellipse with the region's second moments (0 circle, ->1 line)."""
    if m["m00"] == 0:
        return 0.0
    a, b, c = m["mu20"] / m["m00"], m["mu11"] / m["m00"], m["mu02"] / m["m00"]
    root = math.sqrt(((a - c) / 2) ** 2 + b**2)
    big, small = (a + c) / 2 + root, (a + c) / 2 - root
    return math.sqrt(max(0.0, 1.0 - small / big)) if big > 0 else 0.0


def _lesion(img, roi):
    """Lesion brightness against its immediate surround: hypoechoic masses read darker."""
    import cv2  # noqa: PLC0415

    if roi is None:
        return np.zeros(len(_LESION_NAMES))
    inside = img[roi.astype(bool)] / 255.0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _RING_PX + 1, 2 * _RING_PX + 1))
    ring = cv2.dilate(roi, kernel).astype(bool) & ~roi.astype(bool)
    contrast = inside.mean() - img[ring].mean() / 255.0 if ring.any() else 0.0
    return np.array([inside.mean(), inside.std(), contrast])
