"""IBSI radiomics features of one 2D image and its ROI, computed by PyRadiomics' own extractor.

The image is resampled so its longest side is ``resample_to`` px (aspect kept), so features of
images of different sizes are comparable; one resampled pixel is one PyRadiomics "mm" (sizes,
areas and LoG sigmas are in resampled pixels). Grey levels are the preprocessed 0-255 values,
binned by a fixed ``bin_width``.

The ROI is the lesion mask when the image has one. Without one it is ``roi_without_mask``:
``frame``, the whole image (ultrasound: the frame is the scan), or ``foreground``, the largest
Otsu-bright region (mammography: the breast, without the film background and labels). An ROI under
``min_roi_pixels`` pixels after resampling (or one row or column thin) is an ImageError, not NaN
features: a degenerate lesion mask is a data error to fix, and PyRadiomics would fail on it anyway.

The image goes to PyRadiomics as a true 2D SimpleITK image: PyRadiomics then computes shape2D and
in-plane texture natively. ``force2D`` is left off on purpose: on a 2D image it would make the
wavelet decompose one axis only (wavelet-H/-L instead of LL, LH, HL, HH).

PyRadiomics, SimpleITK and OpenCV are imported only where features are computed: checking a
study's params (``params_problems``) and naming a cache key (``resolve_params``) stay cheap.
"""

from __future__ import annotations

import difflib
import logging
import threading

import numpy as np

from features.errors import ImageError

# Bump when what a feature means changes here (resampling, ROI rule): part of the cache identity.
RADIOMICS_VERSION = 1
PACKAGE = "pyradiomics-bhklab"

CLASSES = ("firstorder", "shape2D", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
#: Our image-type names -> PyRadiomics' (``enableImageTypes`` keys).
IMAGE_TYPES = {"original": "Original", "log": "LoG", "wavelet": "Wavelet"}
ROI_RULES = ("frame", "foreground")
DEFAULTS = {
    "classes": list(CLASSES),
    "image_types": ["original"],
    "bin_width": 8,              # 32 grey levels over the 8-bit range
    "log_sigmas": [1.0, 2.0, 3.0],
    "resample_to": 256,
    "roi_without_mask": "frame",
    "min_roi_pixels": 16,
}
PARAMS = tuple(DEFAULTS)

# Label values of the packed ROI channel: outside the image (canvas padding), image, ROI.
_PAD, _IMAGE, _ROI = 0, 1, 2


def _number_list(v):
    return isinstance(v, list) and bool(v) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in v)


def _choices(v, allowed):
    return isinstance(v, list) and bool(v) and all(isinstance(x, str) and x in allowed for x in v)


def _positive(v, minimum=0):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > minimum


_CHECKS = {
    "classes": (lambda v: _choices(v, CLASSES), f"a non-empty list of {', '.join(CLASSES)}"),
    "image_types": (lambda v: _choices(v, IMAGE_TYPES), f"a non-empty list of {', '.join(IMAGE_TYPES)}"),
    "bin_width": (_positive, "a number > 0 (grey levels per bin, on the 0-255 scale)"),
    "log_sigmas": (_number_list, "a non-empty list of numbers > 0 (in resampled pixels)"),
    "resample_to": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 32, "an integer >= 32"),
    "roi_without_mask": (lambda v: v in ROI_RULES, f"one of {', '.join(ROI_RULES)}"),
    "min_roi_pixels": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2, "an integer >= 2"),
}


def params_problems(params) -> list[str]:
    """Every problem with a radiomics params mapping, as 'key: ...' lines; [] when fine."""
    if params is None:
        return []
    if not isinstance(params, dict):
        return [f"expected a mapping of radiomics params ({', '.join(PARAMS)}), got {params!r}"]
    out = []
    for key, value in params.items():
        if key not in _CHECKS:
            close = difflib.get_close_matches(str(key), PARAMS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(PARAMS)}"
            out.append(f"{key}: unknown radiomics param; {hint}")
            continue
        check, expected = _CHECKS[key]
        if not check(value):
            out.append(f"{key}: expected {expected}, got {value!r}")
    return out


def resolve_params(params=None) -> dict:
    """The params with defaults filled in, canonically ordered (what the cache identity hashes)."""
    problems = params_problems(params)
    if problems:
        raise ValueError("Bad radiomics params: " + "; ".join(problems))
    out = {**DEFAULTS, **(params or {})}
    out["classes"] = [c for c in CLASSES if c in out["classes"]]
    out["image_types"] = [t for t in IMAGE_TYPES if t in out["image_types"]]
    out["log_sigmas"] = sorted(float(x) for x in set(out["log_sigmas"]))
    out["bin_width"] = float(out["bin_width"])
    if "log" not in out["image_types"]:
        out["log_sigmas"] = []          # unused, so it must not split caches
    return {k: out[k] for k in PARAMS}


def pyradiomics_settings(params) -> dict:
    """PyRadiomics' extractor settings for resolved ``params`` (also for a direct call in tests)."""
    return {"binWidth": params["bin_width"], "label": 1, "minimumROIDimensions": 2,
            "minimumROISize": params["min_roi_pixels"], "additionalInfo": False}


def make_extractor(params):
    """A configured ``RadiomicsFeatureExtractor`` (PyRadiomics imported here)."""
    import radiomics  # noqa: PLC0415
    from radiomics import featureextractor  # noqa: PLC0415

    # PyRadiomics logs every class and filter at INFO and warns on every image that GLCM is symmetrical,
    # to its own handler and up to ours: errors only
    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(**pyradiomics_settings(params))
    extractor.disableAllFeatures()
    for name in params["classes"]:
        extractor.enableFeatureClassByName(name)
    types = {IMAGE_TYPES[t]: ({"sigma": list(params["log_sigmas"])} if t == "log" else {})
             for t in params["image_types"]}
    extractor.enableImageTypes(**types)
    return extractor


# --- preparation: resample and pack (runs in decode threads) ---------------------------------------

def _resample(gray, mask, side):
    import cv2  # noqa: PLC0415

    height, width = gray.shape
    scale = side / max(height, width)
    new_h, new_w = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
    # INTER_AREA averages when shrinking (no aliasing) but turns blocky when enlarging.
    interpolation = cv2.INTER_AREA if scale <= 1 else cv2.INTER_LINEAR
    image = cv2.resize(gray, (new_w, new_h), interpolation=interpolation)
    roi = None if mask is None else cv2.resize(mask.astype(np.uint8), (new_w, new_h),
                                               interpolation=cv2.INTER_NEAREST) > 0
    return image, roi


def foreground(gray):
    """The largest Otsu-bright region (the breast on a mammogram), small holes closed."""
    import cv2  # noqa: PLC0415

    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    _, binary = cv2.threshold(blurred, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return np.ones(gray.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == largest).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    return cv2.morphologyEx(region, cv2.MORPH_CLOSE, kernel) > 0


def prepare(gray, mask, params):
    """(2, side, side) uint8: the resampled image, and labels (ROI 2, image 1, padding 0).

    A fixed shape, so prepared images stack into a batch; the image sits at the top-left corner.
    """
    side = params["resample_to"]
    image, roi = _resample(np.asarray(gray, np.uint8), mask, side)
    what = "lesion mask"
    if roi is None:
        what = f"ROI ({params['roi_without_mask']})"
        roi = np.ones(image.shape, bool) if params["roi_without_mask"] == "frame" else foreground(image)
    rows, cols = np.flatnonzero(roi.any(axis=1)), np.flatnonzero(roi.any(axis=0))
    n = int(roi.sum())
    if n < params["min_roi_pixels"] or len(rows) < 2 or len(cols) < 2:
        raise ImageError("radiomics", f"its {what} covers {n} px ({len(cols)}x{len(rows)} px box) after "
                         f"resampling to {image.shape[1]}x{image.shape[0]} px; radiomics needs at least "
                         f"{params['min_roi_pixels']} px spanning 2 rows and 2 columns: fix the mask, or "
                         "lower the backbone's params.min_roi_pixels / raise params.resample_to")
    packed = np.zeros((2, side, side), np.uint8)
    h, w = image.shape
    packed[0, :h, :w] = image
    packed[1, :h, :w] = np.where(roi, _ROI, _IMAGE)
    return packed


def unpack(packed):
    """(image float32, labels uint8) of one packed image, the canvas padding cut away."""
    inside = packed[1] != _PAD
    h, w = int(inside.any(axis=1).sum()), int(inside.any(axis=0).sum())
    return packed[0, :h, :w].astype(np.float32), packed[1, :h, :w]


# --- computation ------------------------------------------------------------------------------------

_local = threading.local()


def _extractor_for(params):
    """One extractor per thread/process and params (PyRadiomics extractors hold state while running)."""
    key = repr(sorted(params.items()))
    cache = getattr(_local, "extractors", None)
    if cache is None:
        cache = _local.extractors = {}
    if key not in cache:
        cache[key] = make_extractor(params)
    return cache[key]


def raw_features(packed, params) -> dict:
    """PyRadiomics' result for one packed image, its diagnostics_* entries dropped."""
    import SimpleITK as sitk  # noqa: PLC0415

    image, labels = unpack(packed)
    roi = sitk.GetImageFromArray((labels == _ROI).astype(np.uint8))
    result = _extractor_for(params).execute(sitk.GetImageFromArray(image), roi)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def features(packed, params, names) -> np.ndarray:
    """float64 vector of one packed image in the order of ``names``."""
    found = raw_features(packed, params)
    missing = [n for n in names if n not in found]
    if missing:
        raise ImageError("radiomics", f"PyRadiomics returned no {', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''} for it (image too small for the filters?)")
    return np.array([found[n] for n in names], np.float64)


def features_many(stack, params, names) -> np.ndarray:
    """Rows for a stack of packed images (what a worker process runs on its share of a batch)."""
    return np.stack([features(p, params, names) for p in stack]) if len(stack) else np.zeros((0, len(names)))


def feature_names(params) -> list[str]:
    """PyRadiomics' own names for these params, in its order: taken from one run on a synthetic disk."""
    yy, xx = np.mgrid[:64, :64]
    rng = np.random.default_rng(0)
    gray = (rng.random((64, 64)) * 120 + 60 * ((yy - 32) ** 2 + (xx - 30) ** 2 < 400)).astype(np.uint8)
    disk = (yy - 32) ** 2 + (xx - 30) ** 2 < 300
    synthetic = {**params, "resample_to": 64, "min_roi_pixels": 2}
    return list(raw_features(prepare(gray, disk, synthetic), synthetic))
