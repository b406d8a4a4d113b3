"""Per-modality image preprocessing before a backbone sees the image: crop, denoise, CLAHE, resize.

Pure array code (uint8 gray in, uint8 gray out); reading files lives in ``features.imageio``.
Boxes are ``(y0, y1, x0, x1)`` with exclusive ends, so ``img[y0:y1, x0:x1]`` is the crop.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from numbers import Real

import cv2
import numpy as np

KINDS = ("mammography", "ultrasound", "none")
DENOISERS = ("none", "median", "gaussian")
RESIZE_MODES = ("pad", "stretch")

_MODALITY_DEFAULTS = {
    "mammography": {"otsu_crop": True, "clahe": True, "denoise": "none"},
    "ultrasound": {"denoise": "median", "clahe": True},
    "none": {},
}


@dataclass(frozen=True)
class PreprocessSpec:
    """How one modality's images are preprocessed; part of the extraction cache key."""

    kind: str = "none"
    otsu_crop: bool = False
    crop_margin: float = 0.02
    denoise: str = "none"
    denoise_ksize: int = 5
    clahe: bool = False
    clahe_clip: float = 2.0
    clahe_tile: int = 8
    roi_crop: bool = False
    roi_margin: float = 0.15
    resize_mode: str = "pad"

    def __post_init__(self):
        _check_choice("kind", self.kind, KINDS)
        _check_choice("denoise", self.denoise, DENOISERS)
        _check_choice("resize_mode", self.resize_mode, RESIZE_MODES)
        for name in ("otsu_crop", "clahe", "roi_crop"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"PreprocessSpec.{name} must be true or false, got {value!r}")
        for name in ("crop_margin", "roi_margin"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise ValueError(f"PreprocessSpec.{name} must be a number >= 0, got {value!r}")
        ksize = self.denoise_ksize
        if not _is_int(ksize) or ksize < 3 or ksize % 2 == 0:
            raise ValueError(
                f"PreprocessSpec.denoise_ksize must be an odd integer >= 3, got {ksize!r}"
            )
        if not _is_number(self.clahe_clip) or self.clahe_clip <= 0:
            raise ValueError(f"PreprocessSpec.clahe_clip must be > 0, got {self.clahe_clip!r}")
        if not _is_int(self.clahe_tile) or self.clahe_tile < 1:
            raise ValueError(
                f"PreprocessSpec.clahe_tile must be an integer >= 1, got {self.clahe_tile!r}"
            )
        # Normalise numpy scalars and ints-for-floats so equal specs give equal cache keys.
        for field in dataclasses.fields(self):
            cast = {"bool": bool, "int": int, "float": float, "str": str}[field.type]
            object.__setattr__(self, field.name, cast(getattr(self, field.name)))

    def to_dict(self) -> dict:
        """Plain JSON-able values, stable across runs, for cache keys and artifact metadata."""
        return dataclasses.asdict(self)

    @classmethod
    def for_modality(cls, kind: str, **overrides) -> PreprocessSpec:
        """The house defaults for ``kind``, with any field overridden by keyword."""
        _check_choice("kind", kind, KINDS)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"Unknown PreprocessSpec field(s) {unknown}; expected some of {sorted(known)}"
            )
        return cls(**{"kind": kind, **_MODALITY_DEFAULTS[kind], **overrides})


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"PreprocessSpec.{name} must be one of {list(choices)}, got {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, Real) and bool(np.isfinite(value))


def _check_gray(gray: np.ndarray, name: str = "gray") -> None:
    if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.dtype != np.uint8:
        shape = getattr(gray, "shape", None)
        dtype = getattr(gray, "dtype", type(gray).__name__)
        raise ValueError(
            f"Expected {name} to be a 2D uint8 array, got shape {shape} and dtype {dtype}; "
            "convert it with features.imageio.to_gray_uint8"
        )
    if gray.size == 0:
        raise ValueError(f"Expected a non-empty image, got shape {gray.shape}")


def _expand_box(box, margin: float, shape) -> tuple[int, int, int, int]:
    """Grow a box by ``margin`` times its height/width on each side, clipped to the image."""
    y0, y1, x0, x1 = box
    dy = int(round(margin * (y1 - y0)))
    dx = int(round(margin * (x1 - x0)))
    height, width = shape[:2]
    return max(0, y0 - dy), min(height, y1 + dy), max(0, x0 - dx), min(width, x1 + dx)


def breast_bbox(gray: np.ndarray) -> tuple[int, int, int, int]:
    """Box of the largest bright region (the breast), so film labels and markers fall outside it."""
    _check_gray(gray)
    height, width = gray.shape
    # The blur keeps film grain and scanner noise from splintering the breast into pieces.
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    _, binary = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Opening cuts the thin bright bridges (film edges, strips) that would otherwise join a
    # label to the breast and make it part of the largest region.
    ksize = max(3, int(round(0.02 * min(height, width))) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ksize, ksize))
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:  # label 0 is the background; nothing else means nothing was found
        return 0, height, 0, width
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x = int(stats[largest, cv2.CC_STAT_LEFT])
    y = int(stats[largest, cv2.CC_STAT_TOP])
    w = int(stats[largest, cv2.CC_STAT_WIDTH])
    h = int(stats[largest, cv2.CC_STAT_HEIGHT])
    return y, y + h, x, x + w


def mask_bbox(mask: np.ndarray, margin: float) -> tuple[int, int, int, int] | None:
    """Box of the mask's True pixels plus ``margin`` × box size of context; None if empty."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"Expected a 2D mask, got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    return _expand_box(box, margin, mask.shape)


def preprocess(
    gray: np.ndarray, spec: PreprocessSpec, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop (ROI or breast), denoise and equalise one image; the mask is cropped alongside it."""
    _check_gray(gray)
    if mask is not None:
        mask = np.asarray(mask).astype(bool)
        if mask.shape != gray.shape:
            raise ValueError(
                f"Expected the mask to have the image's shape {gray.shape}, got {mask.shape}"
            )

    box = None
    roi_box = mask_bbox(mask, spec.roi_margin) if (spec.roi_crop and mask is not None) else None
    if roi_box is not None:
        box = roi_box
    elif spec.otsu_crop:
        box = _expand_box(breast_bbox(gray), spec.crop_margin, gray.shape)
    if box is not None:
        y0, y1, x0, x1 = box
        gray = gray[y0:y1, x0:x1]
        if mask is not None:
            mask = mask[y0:y1, x0:x1]

    out = np.ascontiguousarray(gray).copy()
    ksize = spec.denoise_ksize
    if spec.denoise == "median":
        out = cv2.medianBlur(out, ksize)
    elif spec.denoise == "gaussian":
        out = cv2.GaussianBlur(out, (ksize, ksize), 0)
    if spec.clahe:
        clahe = cv2.createCLAHE(
            clipLimit=float(spec.clahe_clip), tileGridSize=(spec.clahe_tile, spec.clahe_tile)
        )
        out = clahe.apply(out)
    if mask is not None:
        mask = mask.copy()
    return out, mask


def _square_geometry(shape, size: int, mode: str):
    """Target (height, width) of the resized image and its (top, left) offset on the canvas."""
    if not _is_int(size) or size < 1:
        raise ValueError(f"Expected size to be a positive integer, got {size!r}")
    if mode not in RESIZE_MODES:
        raise ValueError(f"Expected mode to be one of {list(RESIZE_MODES)}, got {mode!r}")
    height, width = shape[:2]
    if mode == "stretch":
        return (size, size), (0, 0)
    scale = size / max(height, width)
    new_h = min(size, max(1, int(round(height * scale))))
    new_w = min(size, max(1, int(round(width * scale))))
    return (new_h, new_w), ((size - new_h) // 2, (size - new_w) // 2)


def fit_square(gray: np.ndarray, size: int, mode: str = "pad") -> np.ndarray:
    """A size×size uint8 image: aspect kept on a black canvas ("pad") or stretched ("stretch")."""
    _check_gray(gray)
    (new_h, new_w), (top, left) = _square_geometry(gray.shape, size, mode)
    height, width = gray.shape
    # INTER_AREA averages when shrinking (no aliasing) but turns blocky when enlarging.
    shrinking = new_h <= height and new_w <= width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(gray, (new_w, new_h), interpolation=interpolation)
    canvas = np.zeros((size, size), dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def fit_square_mask(mask: np.ndarray, size: int, mode: str = "pad") -> np.ndarray:
    """The mask under the same geometry as ``fit_square``, nearest-neighbour so it stays binary."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"Expected a non-empty 2D mask, got shape {mask.shape}")
    (new_h, new_w), (top, left) = _square_geometry(mask.shape, size, mode)
    resized = cv2.resize(
        mask.astype(np.uint8), (new_w, new_h), interpolation=cv2.INTER_NEAREST
    )
    canvas = np.zeros((size, size), dtype=bool)
    canvas[top : top + new_h, left : left + new_w] = resized > 0
    return canvas
