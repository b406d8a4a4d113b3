"""How one modality's images are preprocessed (the settings only): part of every cache key.

Kept apart from the image code in ``features.preprocess`` so that loading a study, checking
freshness and fitting never import OpenCV.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from numbers import Real

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
