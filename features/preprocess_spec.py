"""How one modality's images are preprocessed (the settings only): part of every cache key.

Kept apart from the image code in ``features.preprocess`` so that loading a study, checking
freshness and fitting never import OpenCV.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from numbers import Real
from types import SimpleNamespace

import numpy as np

KINDS = ("mammography", "ultrasound", "none")
DENOISERS = ("none", "median", "gaussian")
RESIZE_MODES = ("pad", "stretch")
#: ``dicom_frame`` besides a 0-based frame index (pooled over all frames); the same as features.dicom.
FRAME_POOLS = ("mean", "max")

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
    # DICOM only: which frame of a multi-frame file (None refuses one), and whether raw detector
    # images (Presentation Intent Type FOR PROCESSING) are embedded. Added later than the fields
    # above, so ``to_dict`` leaves them out at their defaults: older cache keys stay valid.
    dicom_frame: int | str | None = None
    dicom_for_processing: bool = False

    def __post_init__(self):
        problems = _field_problems(self)
        if problems:
            raise ValueError("; ".join(f"PreprocessSpec.{name} {message}" for name, message in problems))
        # Normalise numpy scalars and ints-for-floats so equal specs give equal cache keys.
        for field in dataclasses.fields(self):
            cast = {"bool": bool, "int": int, "float": float, "str": str}.get(field.type, _frame_value)
            object.__setattr__(self, field.name, cast(getattr(self, field.name)))

    def to_dict(self) -> dict:
        """Plain JSON-able values, stable across runs, for cache keys and artifact metadata; the
        later fields only when set, so a spec without them keys exactly as it did before them."""
        out = dataclasses.asdict(self)
        for name in _KEYED_WHEN_SET:
            if out[name] == _DEFAULTS[name]:
                del out[name]
        return out

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

    @classmethod
    def problems(cls, kind: str, **overrides) -> list[tuple[str, str]]:
        """Every bad field of ``for_modality(kind, **overrides)`` as (field, what is wrong), so that
        a study file's mistakes are all listed at once; [] when the spec can be built."""
        known = {field.name for field in dataclasses.fields(cls)}
        values = {field.name: field.default for field in dataclasses.fields(cls)}
        values.update({"kind": kind, **_MODALITY_DEFAULTS[kind if kind in KINDS else "none"]})
        values.update({k: v for k, v in overrides.items() if k in known})
        out = [(name, "is not a preprocessing field") for name in sorted(set(overrides) - known)]
        return out + _field_problems(SimpleNamespace(**values))


_KEYED_WHEN_SET = ("dicom_frame", "dicom_for_processing")
_DEFAULTS = {field.name: field.default for field in dataclasses.fields(PreprocessSpec)}


def _frame_value(value):
    """A dicom_frame as a plain int, pool name or None (numpy ints from a table are ints)."""
    return int(value) if _is_int(value) else value


def _field_problems(spec) -> list[tuple[str, str]]:
    """(field, message) for every field of ``spec`` (anything with the fields as attributes) that
    is out of range or of the wrong type."""
    out = []
    for name, choices in (("kind", KINDS), ("denoise", DENOISERS), ("resize_mode", RESIZE_MODES)):
        if getattr(spec, name) not in choices:
            out.append((name, _choice_message(getattr(spec, name), choices)))
    for name in ("otsu_crop", "clahe", "roi_crop"):
        value = getattr(spec, name)
        if not isinstance(value, (bool, np.bool_)):
            out.append((name, f"must be true or false, got {value!r}"))
    for name in ("crop_margin", "roi_margin"):
        value = getattr(spec, name)
        if not _is_number(value) or value < 0:
            out.append((name, f"must be a number >= 0, got {value!r}"))
    ksize = spec.denoise_ksize
    if not _is_int(ksize) or ksize < 3 or ksize % 2 == 0:
        out.append(("denoise_ksize", f"must be an odd integer >= 3, got {ksize!r}"))
    if not _is_number(spec.clahe_clip) or spec.clahe_clip <= 0:
        out.append(("clahe_clip", f"must be > 0, got {spec.clahe_clip!r}"))
    if not _is_int(spec.clahe_tile) or spec.clahe_tile < 1:
        out.append(("clahe_tile", f"must be an integer >= 1, got {spec.clahe_tile!r}"))
    frame = spec.dicom_frame
    if not (frame is None or frame in FRAME_POOLS or (_is_int(frame) and frame >= 0)):
        out.append(("dicom_frame", "must be null (single-frame DICOMs only), a frame index >= 0 or one of "
                                   f"{list(FRAME_POOLS)}, got {frame!r}"))
    if not isinstance(spec.dicom_for_processing, (bool, np.bool_)):
        out.append(("dicom_for_processing", f"must be true or false, got {spec.dicom_for_processing!r}"))
    return out


def _choice_message(value, choices):
    return f"must be one of {list(choices)}, got {value!r}"


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"PreprocessSpec.{name} {_choice_message(value, choices)}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, Real) and bool(np.isfinite(value))
