"""Which columns of the design frame belong to which embedding block, clinical type or indicator.

Written by ``fuse`` next to the design matrix and read by ``fit``; the only contract between them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ModelsError

CLINICAL_KINDS = ("numeric", "ordinal", "categorical")
# the stack refits on subsets of the layout that the report compares (see ``ablation_layouts``)
ABLATIONS = ("modality", "backbone", "images_only", "clinical_only")


@dataclass(frozen=True)
class FeatureLayout:
    """Column roles of a design frame.

    ``blocks`` maps a block name ("ultrasound/resnet50") to its columns; ``clinical`` maps a column
    to "numeric", "ordinal" or "categorical"; ``indicators`` are 0/1 missing-modality columns.
    ``block_indicators`` (optional) names the indicator of each block, so that NaN rows of a block
    can be checked against it; a block without one may only be missing whole rows.

    Frozen because one layout is shared by every step and base pipeline built from it; estimators
    store it as a parameter (``clone`` deep-copies it).
    """

    blocks: dict[str, list[str]] = field(default_factory=dict)
    clinical: dict[str, str] = field(default_factory=dict)
    indicators: list[str] = field(default_factory=list)
    block_indicators: dict[str, str] = field(default_factory=dict)

    __hash__ = None  # equal layouts compare equal, but their dicts make them no dict keys

    def __post_init__(self):
        normal = {"blocks": {str(k): [str(c) for c in v] for k, v in self.blocks.items()},
                  "clinical": {str(k): str(v) for k, v in self.clinical.items()},
                  "indicators": [str(c) for c in self.indicators],
                  "block_indicators": {str(k): str(v) for k, v in self.block_indicators.items()}}
        for name, value in normal.items():
            object.__setattr__(self, name, value)
        self._check()

    def _check(self):
        bad = {c: k for c, k in self.clinical.items() if k not in CLINICAL_KINDS}
        if bad:
            raise ModelsError(
                f"clinical column types must be one of {CLINICAL_KINDS}; got {bad}")
        empty = [b for b, cols in self.blocks.items() if not cols]
        if empty:
            raise ModelsError(f"blocks without columns: {empty}")
        seen, dup = set(), []
        for c in self.columns:
            (dup.append(c) if c in seen else seen.add(c))
        if dup:
            raise ModelsError(f"columns listed twice in the layout: {sorted(set(dup))[:10]}")
        unknown_blocks = sorted(set(self.block_indicators) - set(self.blocks))
        unknown_ind = sorted(set(self.block_indicators.values()) - set(self.indicators))
        if unknown_blocks or unknown_ind:
            raise ModelsError(
                "block_indicators must name known blocks and indicators; unknown blocks "
                f"{unknown_blocks}, unknown indicators {unknown_ind}")

    @property
    def columns(self) -> list[str]:
        """All columns, in block, clinical, indicator order."""
        out = [c for cols in self.blocks.values() for c in cols]
        return out + list(self.clinical) + list(self.indicators)

    def clinical_of(self, *kinds: str) -> list[str]:
        return [c for c, k in self.clinical.items() if k in kinds]

    @property
    def n_categorical(self) -> int:
        return len(self.clinical_of("categorical"))

    def subset(self, blocks, clinical: bool) -> "FeatureLayout":
        """These blocks (in layout order, with their indicators), plus the clinical columns if
        ``clinical``; indicators of the blocks left out go with them."""
        blocks = list(blocks)
        unknown = [b for b in blocks if b not in self.blocks]
        if unknown:
            raise ModelsError(f"unknown blocks {unknown}; the layout has {list(self.blocks)}")
        keep = {b: cols for b, cols in self.blocks.items() if b in blocks}
        owned = {b: self.block_indicators[b] for b in keep if b in self.block_indicators}
        return FeatureLayout(blocks=keep, clinical=self.clinical if clinical else {},
                             indicators=sorted(set(owned.values())), block_indicators=owned)

    def to_dict(self) -> dict:
        return {
            "blocks": {k: list(v) for k, v in self.blocks.items()},
            "clinical": dict(self.clinical),
            "indicators": list(self.indicators),
            "block_indicators": dict(self.block_indicators),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureLayout":
        unknown = sorted(set(d) - {"blocks", "clinical", "indicators", "block_indicators"})
        if unknown:
            raise ModelsError(f"unknown layout keys {unknown}")
        return cls(blocks=d.get("blocks", {}), clinical=d.get("clinical", {}),
                   indicators=d.get("indicators", []),
                   block_indicators=d.get("block_indicators", {}))

    @classmethod
    def coerce(cls, layout) -> "FeatureLayout":
        """Accept a layout or its dict form (as saved in design.json and by older models)."""
        if isinstance(layout, cls):
            return layout
        if isinstance(layout, dict):
            return cls.from_dict(layout)
        raise ModelsError(f"expected a FeatureLayout or its dict form, got {type(layout).__name__}")


def ablation_layouts(layout: FeatureLayout, kinds) -> dict[str, FeatureLayout]:
    """name → restricted layout, for the stack refits the report compares.

    Block names are "modality/backbone"; "modality" and "backbone" ablations exist only where the
    layout has more than one of them, "images_only" and "clinical_only" only with clinical columns.
    """
    unknown = sorted(set(kinds) - set(ABLATIONS))
    if unknown:
        raise ModelsError(f"unknown ablations {unknown}; choose from {list(ABLATIONS)}")
    blocks = list(layout.blocks)
    modality = {b: b.partition("/")[0] for b in blocks}
    backbone = {b: b.partition("/")[2] for b in blocks}
    out = {}
    for kind, part in (("modality", modality), ("backbone", backbone)):
        if kind in kinds and len(set(part.values())) > 1:
            for value in sorted(set(part.values())):
                out[f"{kind}:{value}"] = layout.subset([b for b in blocks if part[b] == value], False)
    if "images_only" in kinds and layout.clinical:
        out["images_only"] = layout.subset(blocks, False)
    if "clinical_only" in kinds and layout.clinical:
        out["clinical_only"] = layout.subset([], True)
    return out
