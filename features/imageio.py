"""Reading images and masks from disk into numpy arrays (the IO edge of the features package).

Raster formats go through OpenCV, DICOM through pydicom (``features.dicom``); every failure becomes
an ``ImageError`` that names the file and says what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from features.dicom import read_dicom
from features.errors import ImageError

SUPPORTED_FORMATS = "PNG/JPEG/TIFF/PGM/PPM/BMP/DICOM"

DICOM_SUFFIXES = (".dcm", ".dicom")

# Leading bytes of the raster formats OpenCV reads for us; DICOM is recognised separately
# by "DICM" after its 128-byte preamble.
_SIGNATURES = (
    b"\x89PNG",
    b"\xff\xd8\xff",  # JPEG
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"P2",  # PGM (text)
    b"P5",  # PGM (binary)
    b"P3",  # PPM (text)
    b"P6",  # PPM (binary)
    b"BM",  # BMP
)
_DICOM_MAGIC_OFFSET = 128
_DICOM_MAGIC = b"DICM"
_HEADER_BYTES = _DICOM_MAGIC_OFFSET + len(_DICOM_MAGIC)


def _read_header(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(_HEADER_BYTES)


def _has_dicom_magic(header: bytes) -> bool:
    return header[_DICOM_MAGIC_OFFSET:_HEADER_BYTES] == _DICOM_MAGIC


def _has_known_signature(header: bytes) -> bool:
    return header.startswith(_SIGNATURES) or _has_dicom_magic(header)


def image_problem(path) -> str | None:
    """Why ``path`` cannot be an image we read, or None; checks only the first bytes.

    Manifest validation calls this for every row before any decoding, so it must stay cheap.
    """
    path = Path(path)
    try:
        if not path.exists():
            return "file not found"
        if not path.is_file():
            return "not a file"
        if path.stat().st_size == 0:
            return "empty file"
        header = _read_header(path)
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    if not _has_known_signature(header):
        return f"not a {SUPPORTED_FORMATS} file (unrecognised header)"
    return None


def _is_dicom(path: Path, header: bytes) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES or _has_dicom_magic(header)


def read_image(path, *, dicom_frame=None, dicom_for_processing=False, notes=None) -> np.ndarray:
    """Pixels of an image file: 2D gray or HxWx3 RGB; DICOM comes back as float32 display values.

    The ``dicom_*`` settings apply to DICOM files only (see ``features.dicom.read_dicom``), and
    ``notes``, a list, receives what is worth recording about the file (a FOR PROCESSING DICOM).
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(path, "file not found")
    if not path.is_file():
        raise ImageError(path, "not a file")
    try:
        header = _read_header(path)
    except OSError as exc:
        raise ImageError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if not header:
        raise ImageError(path, "empty file")
    if _is_dicom(path, header):
        return read_dicom(path, frame=dicom_frame, for_processing=dicom_for_processing, notes=notes)
    return _read_raster(path, header)


def _read_raster(path: Path, header: bytes) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        if _has_known_signature(header):
            reason = "not a readable image (cv2 could not decode it; truncated or corrupt?)"
        else:
            reason = f"not a readable image (unrecognised header; supported: {SUPPORTED_FORMATS})"
        raise ImageError(path, reason)
    if img.ndim == 2:
        return img
    channels = img.shape[2]
    if channels == 1:
        return img[:, :, 0]
    if channels == 2:  # gray + alpha
        return np.ascontiguousarray(img[:, :, 0])
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise ImageError(path, f"unsupported number of channels ({channels})")


def to_gray_uint8(img: np.ndarray) -> np.ndarray:
    """One 8-bit gray channel: colour is converted, deeper images are min-max scaled to 0..255."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        if img.shape[2] != 3:
            raise ValueError(f"Expected a 2D gray or HxWx3 RGB image, got shape {img.shape}")
        if img.dtype not in (np.uint8, np.uint16, np.float32):
            img = img.astype(np.float32)
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    if img.ndim != 2:
        raise ValueError(f"Expected a 2D gray or HxWx3 RGB image, got shape {img.shape}")
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    return _minmax_uint8(img)


def _minmax_uint8(img: np.ndarray) -> np.ndarray:
    values = img.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(img.shape, dtype=np.uint8)
    low = values[finite].min()
    high = values[finite].max()
    if high <= low:
        return np.zeros(img.shape, dtype=np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    scaled[~finite] = 0.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def read_gray(path, *, dicom_frame=None, dicom_for_processing=False, notes=None) -> np.ndarray:
    """The image at ``path`` as 2D uint8, the form preprocessing works on (settings: ``read_image``)."""
    return to_gray_uint8(read_image(path, dicom_frame=dicom_frame, dicom_for_processing=dicom_for_processing,
                                    notes=notes))


def read_mask(path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A lesion/ROI mask as 2D bool (any channel > 0), resized to ``shape`` (H, W) if given."""
    img = read_image(path)
    mask = img > 0
    if mask.ndim == 3:
        mask = mask.any(axis=2)
    if shape is not None:
        height, width = (int(shape[0]), int(shape[1]))
        if mask.shape != (height, width):
            # Nearest neighbour keeps the mask binary and its edges where they were.
            resized = cv2.resize(
                mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST
            )
            mask = resized > 0
    return mask
