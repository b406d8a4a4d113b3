"""Lesion ROIs given as geometry (circles, boxes) instead of mask images, drawn as masks.

Datasets annotate lesions in different ways: mini-MIAS gives a centre and radius with the origin at
the bottom-left of the original 1024 px film, many ultrasound sets give ``[x, y, w, h]`` boxes in
original-image pixels. A ``RoiShape`` holds such an annotation with its frame (the pixel size the
coordinates refer to) and origin, and draws it at the size of the image actually on disk, so a
resized copy of a dataset keeps its lesions where they are. Everything downstream sees an ordinary
mask, exactly as if a mask file had been given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("circle", "box")
ORIGINS = ("top-left", "bottom-left")
#: How a drawn ROI is written where a mask path would be (image index, records): never a file name.
PREFIX = "roi:"
_ARITY = {"circle": 3, "box": 4}


def _num(v):
    return format(float(v), ".10g")


@dataclass(frozen=True)
class RoiShape:
    """One image's lesions: circles ``(x, y, r)`` or boxes ``(x, y, w, h)`` in ``frame`` pixels.

    ``frame`` is (width, height) of the image the coordinates were measured on, None for the image
    itself. Coordinates are pixel positions (a pixel's centre is its integer index).
    """

    kind: str
    shapes: tuple
    frame: tuple | None = None
    origin: str = "top-left"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"ROI kind must be one of {KINDS}, got {self.kind!r}")
        if self.origin not in ORIGINS:
            raise ValueError(f"ROI origin must be one of {ORIGINS}, got {self.origin!r}")
        shapes = tuple(tuple(float(v) for v in s) for s in self.shapes)
        if not shapes or any(len(s) != _ARITY[self.kind] for s in shapes):
            raise ValueError(f"a {self.kind} ROI needs {_ARITY[self.kind]} numbers per lesion, got {self.shapes!r}")
        if any(not np.isfinite(s).all() for s in shapes) or any(v <= 0 for s in shapes for v in s[2:]):
            raise ValueError(f"ROI sizes must be finite and > 0, got {self.shapes!r}")
        object.__setattr__(self, "shapes", shapes)
        if self.frame is not None:
            frame = tuple(float(v) for v in self.frame)
            if len(frame) != 2 or min(frame) <= 0:
                raise ValueError(f"ROI frame must be (width, height) > 0, got {self.frame!r}")
            object.__setattr__(self, "frame", frame)

    def text(self) -> str:
        """Canonical text (one ROI, one text): stored in the image index and hashed into cache keys."""
        frame = "image" if self.frame is None else "x".join(_num(v) for v in self.frame)
        shapes = "|".join(",".join(_num(v) for v in s) for s in self.shapes)
        return f"{PREFIX}{self.kind};origin={self.origin};frame={frame};{shapes}"

    @classmethod
    def from_text(cls, text: str) -> RoiShape:
        if not is_roi_text(text):
            raise ValueError(f"not an ROI text: {text!r}")
        kind, origin, frame, shapes = text[len(PREFIX):].split(";")
        frame = frame.split("=", 1)[1]
        return cls(kind, tuple(tuple(float(v) for v in s.split(",")) for s in shapes.split("|")),
                   None if frame == "image" else tuple(float(v) for v in frame.split("x")),
                   origin.split("=", 1)[1])

    def mask(self, shape) -> np.ndarray:
        """The lesions as a bool mask of an image of ``shape`` (height, width), scaled from the frame."""
        height, width = int(shape[0]), int(shape[1])
        frame_w, frame_h = self.frame if self.frame is not None else (width, height)
        sx, sy = width / frame_w, height / frame_h
        ys, xs = np.mgrid[0:height, 0:width]
        out = np.zeros((height, width), bool)
        for s in self.shapes:
            if self.kind == "circle":
                x, y, r = s
                y = (frame_h - 1 - y) if self.origin == "bottom-left" else y
                # pixel centres: index i of the frame sits at (i + 0.5) * scale - 0.5 in the image
                cx, cy = (x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5
                out |= ((xs - cx) / (r * sx)) ** 2 + ((ys - cy) / (r * sy)) ** 2 <= 1.0
            else:
                x, y, w, h = s
                top = (frame_h - y - h) if self.origin == "bottom-left" else y
                x0, x1 = int(np.floor(x * sx)), int(np.ceil((x + w) * sx))
                y0, y1 = int(np.floor(top * sy)), int(np.ceil((top + h) * sy))
                out[max(0, y0):max(0, min(height, y1)), max(0, x0):max(0, min(width, x1))] = True
        return out


def is_roi_text(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def parse_box_text(cell: str) -> list[tuple[float, ...]]:
    """'[x, y, w, h]' (or several, ';'-separated, or '[[...], [...]]') as a list of 4-tuples."""
    text = cell.replace("[", " ").replace("]", " ").replace("(", " ").replace(")", " ")
    values = [float(v) for v in text.replace(";", ",").replace(" ", ",").split(",") if v.strip()]
    if not values or len(values) % 4:
        raise ValueError(f"expected '[x, y, w, h]' (4 numbers per box), got {cell!r}")
    return [tuple(values[i:i + 4]) for i in range(0, len(values), 4)]
