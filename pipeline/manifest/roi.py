"""Lesion ROIs declared in the study file as circles or boxes, read per manifest row.

``roi:`` of a modality (or of one view) names where the geometry is: each coordinate is a column
name or a number, e.g. mini-MIAS ``{circle: [x, y, radius], origin: bottom-left, frame: [1024, 1024]}``
or a box column ``{box: bbox, frame: [orig_width, orig_height]}`` holding "[x, y, w, h]". A cell may
hold several lesions ';'-separated (the shared manifests' convention); a row whose cells are all
empty has no ROI (its image is used whole, as a row without a mask file is).
"""

from __future__ import annotations

import numbers

from features.roi import KINDS, ORIGINS, RoiShape, parse_box_text

ROI_KEYS = ("circle", "box", "origin", "frame", "missing")
#: What a row with an image but no ROI cells is: embedded whole (and warned), or left out of the study.
MISSING = ("whole", "exclude")
_ARITY = {"circle": 3, "box": 4}


def _item_ok(v):
    return (isinstance(v, str) and v.strip() != "") or (isinstance(v, numbers.Real) and not isinstance(v, bool))


def roi_problems(roi, where):
    """Everything wrong with one ``roi:`` mapping of the study file, as messages."""
    from pipeline.settings import unknown_key  # noqa: PLC0415

    if not isinstance(roi, dict):
        return [f"{where}: expected a mapping such as {{circle: [x, y, radius], origin: bottom-left, "
                f"frame: [1024, 1024]}} or {{box: bbox}}, got {roi!r}"]
    out = []
    for key in roi:
        if key not in ROI_KEYS:
            unknown_key(key, ROI_KEYS, f"{where}.", out)
    kinds = [k for k in KINDS if k in roi]
    if len(kinds) != 1:
        out.append(f"{where}: give exactly one of 'circle' or 'box' (got {kinds or 'neither'})")
    for kind in kinds:
        value = roi[kind]
        if kind == "box" and isinstance(value, str) and value.strip():
            continue                      # one column of "[x, y, w, h]" texts
        if not isinstance(value, list) or len(value) != _ARITY[kind] or not all(_item_ok(v) for v in value):
            names = "[x, y, radius]" if kind == "circle" else "[x, y, width, height] or one column name"
            out.append(f"{where}.{kind}: expected {names} (each a column name or a number), got {value!r}")
    if roi.get("missing", "whole") not in MISSING:
        out.append(f"{where}.missing: expected one of {list(MISSING)} (an image without an ROI is used whole, "
                   f"or its case is excluded), got {roi['missing']!r}")
    if roi.get("origin", "top-left") not in ORIGINS:
        out.append(f"{where}.origin: expected one of {list(ORIGINS)}, got {roi['origin']!r}")
    frame = roi.get("frame", "image")
    if frame != "image" and not (isinstance(frame, list) and len(frame) == 2 and all(_item_ok(v) for v in frame)):
        out.append(f"{where}.frame: expected [width, height] of the image the coordinates refer to (numbers "
                   f"or column names), or 'image' for the image itself, got {frame!r}")
    return out


def roi_columns(roi):
    """The manifest columns an ROI setting reads."""
    if not roi:
        return []
    items = []
    for key in ("circle", "box", "frame"):
        value = roi.get(key)
        items += value if isinstance(value, list) else ([value] if key == "box" and value else [])
    return [v for v in items if isinstance(v, str) and v != "image"]


def rows_without_roi(roi, frame, path_column):
    """Per row of ``frame``: it has an image in ``path_column`` but no ROI in its cells."""
    import numpy as np  # noqa: PLC0415

    sizes = roi.get("frame") if isinstance(roi.get("frame"), list) else []
    has = np.zeros(len(frame), bool)
    for column in roi_columns(roi):
        if column in frame.columns and column not in sizes:
            has |= (frame[column] != "").to_numpy()
    return (frame[path_column] != "").to_numpy() & ~has


def _values(item, row):
    """(column or None, [floats]) of one coordinate in one row."""
    if not isinstance(item, str):
        return None, [float(item)]
    cell = str(row.get(item, "")).strip()
    return item, [float(v) for v in cell.split(";") if v.strip()]


def row_roi(roi, row):
    """The ROI of one manifest row (a mapping of column -> cell), or None when its cells are empty.

    Raises ValueError saying which column holds what is wrong."""
    kind = "circle" if "circle" in roi else "box"
    spec = roi[kind]
    try:
        if isinstance(spec, str):
            cell = str(row.get(spec, "")).strip()
            shapes = parse_box_text(cell) if cell else []
        else:
            found = [_values(item, row) for item in spec]
            columns = [(c, v) for c, v in found if c is not None]
            if all(not v for _, v in columns) and columns:
                return None
            counts = {len(v) for c, v in columns}
            if len(counts) > 1 or 0 in counts:
                raise ValueError("the lesions are not all given in full: " + ", ".join(
                    f"column '{c}' has {len(v)} value(s)" for c, v in columns))
            n = counts.pop() if counts else 1
            shapes = [tuple(v[i] if len(v) > 1 else v[0] for _, v in found) for i in range(n)]
    except ValueError as exc:
        if "could not convert" in str(exc):
            raise ValueError(f"a coordinate is not a number ({exc})") from None
        raise
    if not shapes:
        return None
    frame = roi.get("frame", "image")
    if frame != "image":
        sizes = []
        for item in frame:
            column, values = _values(item, row)
            if len(values) != 1:
                raise ValueError(f"frame {'column ' + repr(column) if column else 'value'} must hold one number, "
                                 f"got {row.get(column, '')!r}")
            sizes.append(values[0])
        frame = tuple(sizes)
    else:
        frame = None
    return RoiShape(kind, tuple(shapes), frame, roi.get("origin", "top-left"))
