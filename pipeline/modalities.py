"""The ``modalities:`` section: each modality's image columns (one, or one per view), lesion masks
or ROI geometry, how views pool, and its preprocessing.

A modality with ``views`` ({cc: cc_path, mlo: mlo_path}) has several images per case; each is
embedded once and the case's block pools them (``pool``: mean or max over the views present, or
concat: a block per view, a missing view NaN plus its indicator as a missing modality).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

from features.preprocess_spec import PreprocessSpec
from pipeline import settings as s

_PREPROCESS_KEYS = tuple(f.name for f in dataclasses.fields(PreprocessSpec))
MODALITY_KEYS = ("path_column", "mask_column", "roi", "views", "pool", "preprocessing")
VIEW_KEYS = ("path_column", "mask_column", "roi")
#: How the views of one case are pooled into its modality block (concat: a block per view).
POOLS = ("mean", "max", "concat")


@dataclass(frozen=True)
class ImageSource:
    """One image column of a modality (one view, or the modality's only image) and its lesion ROI:
    a mask column, or an ``roi`` geometry (circle/box columns, see pipeline.manifest.roi)."""

    view: str | None
    path_column: str
    mask_column: str | None = None
    roi: dict | None = None

    def to_dict(self):
        out = {"path_column": self.path_column, "mask_column": self.mask_column}
        return {**out, "roi": copy.deepcopy(self.roi)} if self.roi else out


@dataclass(frozen=True)
class Modality:
    name: str
    path_column: str | None
    mask_column: str | None
    preprocess: PreprocessSpec
    roi: dict | None = None
    views: tuple = ()                  # ImageSource per view, in the study file's order
    pool: str = "mean"

    @property
    def sources(self):
        """Every image column of the modality: its views, or its one image."""
        return self.views or (ImageSource(None, self.path_column, self.mask_column, self.roi),)

    @property
    def image_columns(self):
        return [src.path_column for src in self.sources]

    @property
    def has_mask(self):
        return any(src.mask_column or src.roi for src in self.sources)

    def has_image(self, frame):
        """Per manifest row, whether it names an image of this modality in any view."""
        import numpy as np  # noqa: PLC0415

        out = np.zeros(len(frame), bool)
        for column in self.image_columns:
            out |= (frame[column] != "").to_numpy()
        return out

    def block_modalities(self):
        """The modality names of its design blocks: one, or one per view when views are concatenated."""
        if self.views and self.pool == "concat":
            return [f"{self.name}.{v.view}" for v in self.views]
        return [self.name]

    def to_dict(self):
        if self.views:
            return {"views": {v.view: v.to_dict() for v in self.views}, "pool": self.pool,
                    "preprocessing": self.preprocess.to_dict()}
        out = {"path_column": self.path_column, "mask_column": self.mask_column}
        if self.roi:
            out["roi"] = copy.deepcopy(self.roi)
        return {**out, "preprocessing": self.preprocess.to_dict()}


def modalities(mods, errors):
    """The ``modalities:`` section as {name: Modality}; problems are added to ``errors``."""
    if not isinstance(mods, dict) or not mods:
        errors.append("modalities: expected a mapping of modality name to settings, e.g. "
                      "{mammography: {path_column: mammography_path}}")
        return {}
    out = {}
    for name, settings in mods.items():
        where = f"modalities.{name}"
        settings = {} if settings is None else settings
        if not isinstance(settings, dict):
            errors.append(f"{where}: expected a mapping, got {settings!r}")
            continue
        for key in settings:
            if key not in MODALITY_KEYS:
                s.unknown_key(key, MODALITY_KEYS, f"{where}.", errors)
        sources = _sources(name, settings, where, errors)
        if sources is None:
            continue
        prep = settings.get("preprocessing") or {}
        if not isinstance(prep, dict):
            errors.append(f"{where}.preprocessing: expected a mapping, got {prep!r}")
            continue
        bad = [k for k in prep if k not in _PREPROCESS_KEYS]
        for key in bad:
            s.unknown_key(key, _PREPROCESS_KEYS, f"{where}.preprocessing.", errors)
        prep = {k: v for k, v in prep.items() if k not in bad}
        kind = prep.pop("kind", name if name in ("mammography", "ultrasound") else "none")
        bad_fields = PreprocessSpec.problems(kind, **prep)
        errors.extend(f"{where}.preprocessing.{field}: {message}" for field, message in bad_fields)
        if bad_fields:
            continue
        spec = PreprocessSpec.for_modality(kind, **prep)
        if spec.roi_crop and not any(src.mask_column or src.roi for src in sources):
            errors.append(f"{where}.preprocessing.roi_crop: needs {where}.mask_column or {where}.roi "
                          "(the lesion to crop to)")
        if "views" in settings:
            out[str(name)] = Modality(str(name), None, None, spec, views=tuple(sources),
                                      pool=settings.get("pool", "mean"))
        else:
            only = sources[0]
            out[str(name)] = Modality(str(name), only.path_column, only.mask_column, spec, roi=only.roi)
    return out


def _source(view, settings, where, errors, default_path):
    """One ImageSource from a modality's or a view's mapping (path, mask or roi); None when broken."""
    from pipeline.manifest.roi import roi_problems  # noqa: PLC0415

    path_column = settings.get("path_column", default_path)
    mask_column, roi = settings.get("mask_column"), settings.get("roi")
    problems = []
    if not s.text(path_column):
        problems.append(f"{where}.path_column: expected a column name, got {path_column!r}")
    if not s.opt_text(mask_column):
        problems.append(f"{where}.mask_column: expected a column name or null, got {mask_column!r}")
    if roi is not None:
        problems += roi_problems(roi, f"{where}.roi")
        if mask_column:
            problems.append(f"{where}: give the lesion as mask_column or as roi, not both")
    errors.extend(problems)
    return None if problems else ImageSource(view, path_column, mask_column, copy.deepcopy(roi) if roi else None)


def _sources(name, settings, where, errors):
    """The image columns of one modality: its path/mask/roi, or one per view under ``views``."""
    if "views" not in settings:
        if "pool" in settings:
            errors.append(f"{where}.pool: only applies with {where}.views")
        src = _source(None, settings, where, errors, f"{name}_path")
        return None if src is None else [src]
    views = settings["views"]
    clash = [k for k in ("path_column", "mask_column", "roi") if k in settings]
    if clash:
        errors.append(f"{where}: with views, give {', '.join(clash)} per view "
                      f"({where}.views.<view>.path_column ...), not for the modality")
    if not isinstance(views, dict) or not views:
        errors.append(f"{where}.views: expected a mapping of view to its path column, e.g. "
                      "{cc: cc_path, mlo: mlo_path}, got " + repr(views))
        return None
    if settings.get("pool", "mean") not in POOLS:
        errors.append(f"{where}.pool: expected one of {list(POOLS)}, got {settings['pool']!r}")
    out = []
    for view, item in views.items():
        vwhere = f"{where}.views.{view}"
        if not s.text(str(view)) or any(ch in str(view) for ch in "./: "):
            errors.append(f"{vwhere}: a view name must be a word without '.', '/', ':' or spaces")
            continue
        item = {"path_column": item} if isinstance(item, str) else item
        if not isinstance(item, dict):
            errors.append(f"{vwhere}: expected a column name or a mapping with path_column, got {item!r}")
            continue
        for key in item:
            if key not in VIEW_KEYS:
                s.unknown_key(key, VIEW_KEYS, f"{vwhere}.", errors)
        out.append(_source(str(view), item, vwhere, errors, f"{name}_{view}_path"))
    if None in out or not out or clash:
        return None
    columns = [src.path_column for src in out]
    if len(set(columns)) < len(columns):
        errors.append(f"{where}.views: two views read the same column ({columns})")
        return None
    return out


def design_tables(modalities, tables):
    """{(block modality, backbone): table} for the design: views pooled as each modality says
    (``concat`` gives one block per view, named ``<modality>.<view>``)."""
    from features.design import pool_views  # noqa: PLC0415

    out = {}
    for (name, backbone), table in tables.items():
        modality = modalities[name]
        if not modality.views:
            out[(name, backbone)] = table
            continue
        for view, pooled in pool_views(table, modality.pool, [v.view for v in modality.views]).items():
            out[(f"{name}.{view}" if view else name, backbone)] = pooled
    return out
