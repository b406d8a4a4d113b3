"""Per-modality image preprocessing before a backbone sees the image: crop, denoise, CLAHE, resize.

Pure array code (uint8 gray in, uint8 gray out); reading files lives in ``features.imageio``.
Boxes are ``(y0, y1, x0, x1)`` with exclusive ends, so ``img[y0:y1, x0:x1]`` is the crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from features.preprocess_spec import (DENOISERS, KINDS, RESIZE_MODES, PreprocessSpec, _check_choice,  # noqa: F401
                                      _is_int, _is_number)

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
