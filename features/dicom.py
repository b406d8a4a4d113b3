"""DICOM pixel data to numpy, the DICOM half of ``features.imageio``.

The header is read first without the pixel data (cheap), so a file we must refuse (FOR
PROCESSING, multi-frame without a frame setting) costs no decode. Compressed transfer syntaxes
are decoded by pydicom's plugins (requirements-common.txt; figures in bench/dicom_decode.py);
one frame or a pool of all frames; then the modality and VOI LUTs, as a viewer shows the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from features.errors import ImageError
from features.preprocess_spec import FRAME_POOLS  # dicom_frame's pools, besides a 0-based index

FOR_PROCESSING = "FOR PROCESSING"

_SETTING = "modalities.<modality>.preprocessing"
_INSTALL = "pip install -r requirements.txt"
_LIBJPEG = "pylibjpeg and pylibjpeg-libjpeg"
_OPENJPEG = "pylibjpeg and pylibjpeg-openjpeg"
#: The package(s) that decode each compressed syntax, named when none is installed.
PACKAGES = {
    "1.2.840.10008.1.2.4.50": _LIBJPEG,  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51": _LIBJPEG,  # JPEG Extended (Process 2 and 4), 12-bit
    "1.2.840.10008.1.2.4.57": _LIBJPEG,  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70": _LIBJPEG,  # JPEG Lossless (Process 14, SV1)
    "1.2.840.10008.1.2.4.80": "pyjpegls",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "pyjpegls",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": _OPENJPEG,  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": _OPENJPEG,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": _OPENJPEG,  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": _OPENJPEG,  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": _OPENJPEG,  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg and pylibjpeg-rle",  # RLE Lossless
}
#: pydicom tries pylibjpeg first for JPEG-LS; pyjpegls (CharLS) decodes it about 3x faster.
_PREFERRED = {"1.2.840.10008.1.2.4.80": "pyjpegls", "1.2.840.10008.1.2.4.81": "pyjpegls"}


def read_dicom(path, frame=None, for_processing=False, notes=None) -> np.ndarray:
    """Display values (float32; HxW gray, or HxWx3 for colour) of the DICOM at ``path``.

    ``frame``: None (single-frame files only), a 0-based frame index, or "mean"/"max" over all
    frames. ``for_processing``: accept raw detector images (Presentation Intent Type FOR
    PROCESSING); ``notes``, a list, then receives a line saying the image is one.
    """
    path = Path(path)
    header = _read_header(path)
    intent = str(header.get("PresentationIntentType", "")).strip().upper()
    if intent == FOR_PROCESSING:
        if not for_processing:
            raise ImageError(path, "a FOR PROCESSING DICOM (Presentation Intent Type): the raw detector image, "
                                   "before the vendor's processing that makes it readable (log transform, contrast, "
                                   "edge enhancement), so it looks unlike the FOR PRESENTATION images models are "
                                   f"trained on; export FOR PRESENTATION images, or set {_SETTING}."
                                   "dicom_for_processing: true to embed it as it is")
        if notes is not None:
            notes.append("DICOM is FOR PROCESSING (a raw detector image), embedded as it is "
                         "(dicom_for_processing: true)")
    arr, modality_done = _pixels(path, header, _frames_wanted(path, header, frame))
    if arr.ndim == 3:
        # Colour DICOM (common for ultrasound): pydicom already converted YBR to RGB, and
        # windowing is defined for monochrome images only.
        return arr.astype(np.float32)
    return _display_values(path, header, arr, modality_done)


def _read_header(path: Path):
    # pydicom is only needed for DICOM inputs; importing it here keeps raster-only runs lean.
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        # Large values (the pixel data) are skipped, not read: refusing a file costs no decode.
        header = pydicom.dcmread(path, defer_size="64 KB")
    except InvalidDicomError as exc:
        raise ImageError(path, f"not a readable DICOM file ({exc})") from exc
    except Exception as exc:  # a corrupt file can fail anywhere inside the parser
        raise ImageError(path, f"corrupt DICOM file ({type(exc).__name__}: {exc})") from exc
    if not any(k in header for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageError(path, "DICOM has no pixel data")
    return header


def _frames_wanted(path: Path, header, frame):
    """None (the only frame), a frame index, or a pool name, checked against the file's frames."""
    try:
        count = int(header.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        count = 1
    if frame is None:
        if count > 1:
            raise ImageError(path, f"multi-frame DICOM ({count} frames): set {_SETTING}.dicom_frame to a frame "
                                   f"index (0 to {count - 1}) or to mean or max to pool all frames")
        return None
    if frame in FRAME_POOLS:
        return frame
    if not 0 <= frame < count:
        raise ImageError(path, f"dicom_frame {frame} is out of range: this DICOM has {count} "
                               f"frame{'s' if count != 1 else ''} (0 to {count - 1})")
    return frame if count > 1 else None


def _pixels(path: Path, header, frame) -> tuple[np.ndarray, bool]:
    """(values, through the modality LUT already?): one frame's stored values, or all frames'
    modality values pooled (a rescale is linear, so pooling after it equals pooling before)."""
    from pydicom.pixels import iter_pixels, pixel_array

    uid = str(getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", "") or "")
    preferred = _PREFERRED.get(uid)
    attempts = ([{"decoding_plugin": preferred}] if preferred in _available_plugins(uid) else []) + [{}]
    for attempt, options in enumerate(attempts, start=1):
        try:
            if frame in FRAME_POOLS:
                return _pool(iter_pixels(path, **options), header, frame), True
            return pixel_array(path, index=frame, **options), False
        except Exception as exc:  # pydicom raises many types: missing decoder, bad length, ...
            if attempt < len(attempts):
                continue  # the preferred plugin cannot do this file: let pydicom try the others
            raise ImageError(path, decode_problem(uid, exc)) from exc
    raise AssertionError("unreachable")


def _pool(frames, header, how) -> np.ndarray:
    """Mean or max of the frames, one frame in memory at a time."""
    from pydicom.pixels import apply_modality_lut

    pooled, count = None, 0
    for count, values in enumerate(frames, start=1):
        if values.ndim == 2:
            values = apply_modality_lut(values, header)
        values = np.asarray(values, dtype=np.float64)
        if pooled is None:
            pooled = values.copy()
        elif how == "max":
            np.maximum(pooled, values, out=pooled)
        else:
            pooled += values
    return pooled / count if how == "mean" else pooled


def _available_plugins(uid: str) -> tuple:
    from pydicom.pixels import get_decoder

    try:
        return tuple(get_decoder(uid).available_plugins)
    except (NotImplementedError, ValueError):
        return ()


def syntax_label(uid: str) -> str:
    """'JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80)', or what is known of it."""
    from pydicom.uid import UID

    if not uid:
        return "no transfer syntax in the file meta"
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def decode_problem(uid: str, exc: Exception) -> str:
    """Why pixel data in transfer syntax ``uid`` did not decode, and how to fix it."""
    from pydicom.pixels import get_decoder

    label = syntax_label(uid)
    try:
        decoder = get_decoder(uid)
    except (NotImplementedError, ValueError):
        return (f"cannot decode DICOM pixel data in transfer syntax {label}: pydicom has no decoder for it; "
                "convert the file to an uncompressed or JPEG / JPEG 2000 syntax first (e.g. gdcmconv --raw)")
    if not decoder.is_available:
        package = PACKAGES.get(uid, "a pydicom decoding plugin for it")
        return (f"cannot decode DICOM pixel data in transfer syntax {label}: no decoder installed; "
                f"install {package} ({_INSTALL})")
    detail = str(exc).strip().splitlines()
    return f"cannot decode DICOM pixel data in transfer syntax {label}: " + " ".join(d.strip() for d in detail)


def _display_values(path: Path, ds, arr: np.ndarray, modality_done: bool) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    try:
        if not modality_done:
            arr = apply_modality_lut(arr, ds)
        arr = np.asarray(arr)
        if ds.get("VOILUTSequence") and np.issubdtype(arr.dtype, np.floating):
            # A rescale makes the array float even when it stays integral (slope 1, the usual
            # case), and pydicom warns on float input to a LUT; LUT indices are integers anyway.
            arr = np.rint(arr).astype(np.int64)
        arr = apply_voi_lut(arr, ds)
        if photometric == "MONOCHROME1":
            low, high = _voi_output_range(ds, arr)
            arr = (low + high) - np.asarray(arr, dtype=np.float64)
    except (ValueError, NotImplementedError, AttributeError, KeyError) as exc:
        raise ImageError(path, f"cannot apply DICOM modality/VOI LUT ({exc})") from exc
    return np.asarray(arr, dtype=np.float32)


def _voi_output_range(ds, arr: np.ndarray) -> tuple[float, float]:
    """The range the VOI step maps into; MONOCHROME1 inverts about it, not the image's extremes."""
    from pydicom.pixels import apply_voi_lut

    if ds.get("VOILUTSequence"):
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        # A window sends everything outside it to the ends of its output range, so pushing the
        # two infinities through it yields that range, rescale and signedness included.
        ends = apply_voi_lut(np.array([-np.inf, np.inf]), ds)
        return float(ends[0]), float(ends[1])
    return float(np.min(arr)), float(np.max(arr))
