"""Backbones: a registry of families (keras CNNs, the handcrafted block) behind one protocol.

Each public function finds the family that knows a name and hands over to it. What a family and
an embedder must provide is written once, in ``features.backbones.protocol``. Importing this package
imports no framework and no image library: validating names and resolving weights stays cheap.
"""

from __future__ import annotations

import difflib

from features.backbones import handcrafted_family, keras_family, radiomics_family, torch_family
from features.backbones.handcrafted_family import HANDCRAFTED, HandcraftedEmbedder
from features.backbones.keras_family import (BACKBONES, GENERIC_INPUT_SIZE, BackboneInfo, KerasEmbedder,
                                             _keras_constructor, keras_home, offline_hint)
from features.backbones.protocol import Embedder, Family, WeightsChoice, random_seed_for
from features.errors import BackboneError
# Re-exported until pipeline code imports them from features.hashing.
from features.hashing import file_sha256, tensorflow_version, version_of

#: The backbones a study embeds with when it names none (the MPM-MU/Bashir trio plus handcrafted).
DEFAULT_BACKBONES = ("resnet50", "vgg16", "efficientnetb0", "handcrafted")

#: Family name -> module implementing ``protocol.Family``; the first that knows a name builds it.
FAMILIES: dict[str, Family] = {"handcrafted": handcrafted_family, "keras": keras_family, "radiomics": radiomics_family,
                               "torch": torch_family}

__all__ = ["BACKBONES", "DEFAULT_BACKBONES", "FAMILIES", "GENERIC_INPUT_SIZE", "HANDCRAFTED", "BackboneInfo", "Embedder", "Family",
           "HandcraftedEmbedder", "KerasEmbedder", "WeightsChoice", "_keras_constructor", "backbone_problems",
           "build_embedder", "default_input_size", "family_of", "file_sha256", "keras_home", "offline_hint",
           "random_seed_for", "resolve_weights", "tensorflow_version", "takes_params", "uses_mask", "version_of"]


def _unknown(name):
    every = [n for family in FAMILIES.values() for n in family.names(every=True)]
    close = difflib.get_close_matches(name.lower(), every, n=1)
    listed = ", ".join(n for family in FAMILIES.values() for n in family.names())
    notes = "; ".join(family.NOTE for family in FAMILIES.values() if family.NOTE)
    guess = f"; did you mean '{close[0]}'?" if close else "."
    return f"Unknown backbone '{name}'{guess} Known: {listed}" + (f" ({notes})" if notes else "")


def _lookup(name):
    """(lower-case name, family name, family module) for the first family that knows ``name``."""
    key = name.lower()
    for family_name, family in FAMILIES.items():
        if family.knows(key):
            return key, family_name, family
    raise BackboneError(_unknown(name))


def _family(name):
    key, _, family = _lookup(name)
    return key, family


def family_of(name) -> str:
    """The registry name of the family that builds ``name`` (BackboneError if none does)."""
    return _lookup(name)[1]


def default_input_size(name) -> int:
    key, family = _family(name)
    return family.default_input_size(key)


def uses_mask(name) -> bool:
    """Whether the lesion mask changes this backbone's numbers (so it enters the cache key)."""
    return bool(getattr(_family(name)[1], "USES_MASK", False))


def takes_params(name) -> bool:
    """Whether this backbone's family takes a ``params`` mapping from the study file."""
    return bool(getattr(_family(name)[1], "TAKES_PARAMS", False))


def _params(name, family, params):
    """Keyword arguments carrying ``params`` to a family that takes them; a BackboneError for one that doesn't."""
    if params is None:
        return {}
    if not getattr(family, "TAKES_PARAMS", False):
        raise BackboneError(_no_params(name, params))
    return {"params": params}


def _no_params(name, params):
    takers = [n for f in FAMILIES.values() if getattr(f, "TAKES_PARAMS", False) for n in f.names()]
    return (f"Backbone '{name}' takes no params (got {params!r}): remove them "
            f"(backbones that take params: {', '.join(takers)}).")


def resolve_weights(name, weights, seed, params=None) -> WeightsChoice:
    """The config's weights setting as a WeightsChoice, without importing any framework."""
    key, family = _family(name)
    return family.resolve_weights(key, weights, seed, **_params(name, family, params))


def build_embedder(name, choice, input_size=None, batch_size=16, mixed_precision=False, params=None,
                   runtime="tensorflow", cache_dir=None) -> Embedder:
    """Load one extractor for the given resolved weights (once per process: models are reused).

    ``runtime`` (``extract.runtime``) and ``cache_dir`` (where a converted model may be kept) reach
    only the families that take them (``TAKES_RUNTIME``); the others ignore them.
    """
    key, family = _family(name)
    kwargs = _params(name, family, params)
    if getattr(family, "TAKES_RUNTIME", False):
        kwargs.update(runtime=runtime, cache_dir=cache_dir)
    return family.build(key, choice, input_size, batch_size, mixed_precision, **kwargs)


def backbone_problems(name, weights=None, params=None) -> list[str]:
    """What is wrong with a backbone name (and its own weights and params, if given); [] when fine.

    Imports no framework and reads no file, so a whole study can be checked at load. ``weights`` is
    the setting given for this backbone itself, not a study-wide default meant for the CNNs.
    """
    if not isinstance(name, str) or not name.strip():
        return [f"Expected a backbone name, got {name!r}."]
    try:
        key, family = _family(name)
    except BackboneError as exc:
        return [str(exc)]
    if params is not None and not getattr(family, "TAKES_PARAMS", False):
        return family.problems(key, weights) + [_no_params(name, params)]
    return family.problems(key, weights, **({"params": params} if params is not None else {}))
