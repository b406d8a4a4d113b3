"""The written contract of the backbone package: what an embedder is and what a family provides.

To add a family (PyTorch/timm, ...): write one module that provides every `Family`
member, whose `build` returns objects satisfying `Embedder`, and add one entry to `FAMILIES` in
`features/backbones/__init__.py`. Nothing else dispatches on family names.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class WeightsChoice:
    """Resolved weights: ``kind`` is imagenet, file, random or none; ``identity`` keys the cache."""

    kind: str
    identity: str
    path: Path | None = None
    seed: int | None = None


def random_seed_for(name, seed):
    """A per-backbone seed, so a backbone's random weights don't depend on which others are built."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


@runtime_checkable
class Embedder(Protocol):
    """One loaded extractor, built once per process and reused for every image.

    - ``name``: the registry name it was built for.
    - ``input_size``: side of the square image that ``prepare`` makes.
    - ``dim``: the width of one embedding.
    - ``device``: ``"GPU"`` or ``"CPU"``, where ``embed`` runs (for logs and the run record).
    - ``spec``: JSON-able, stored with the embeddings and hashed into fingerprints: everything that
      can change an embedding (family, weights identity, input size, precision, library versions)
      and nothing that cannot (batch size, threads), so caches are shared exactly when they may be.
    - ``feature_names``: one name per column (shown in reports and SHAP), or None for anonymous
      CNN features.
    """

    name: str
    input_size: int
    dim: int
    device: str
    spec: dict[str, Any]
    feature_names: list[str] | None

    def prepare(self, gray, mask=None, resize_mode="pad"):
        """One preprocessed uint8 gray image (and optional mask) to what ``embed`` stacks.

        Runs in worker threads beside decoding, so it must be thread-safe; do the per-image work here.
        """

    def embed(self, prepared):
        """A stack of ``prepare`` outputs, any count, to float32 ``(n, dim)``.

        A row must not depend on the other rows or on which batch it lands in (caches mix batches).
        """


class Family(Protocol):
    """What a family module provides; a module satisfies this, its functions being the methods.

    Names reach a family lower-cased. Everything but ``build`` runs without importing the family's
    framework, so validating a study or reusing a cache never pays for it.
    """

    #: Phrase for the names accepted beyond ``names()``, shown in messages ("" when there are none).
    NOTE: str
    # Optional flags (absent means False): USES_MASK, the lesion mask changes the numbers (so it
    # enters the cache key); TAKES_PARAMS, the backbone's ``params`` mapping is passed to
    # ``problems``, ``resolve_weights`` and ``build`` (a family without it is given none);
    # TAKES_RUNTIME, ``build`` takes ``runtime`` (one of the family's ``RUNTIMES``, ``extract.runtime``)
    # and ``cache_dir`` (a folder where it may keep what it derives from a model, e.g. a converted copy),
    # and ``runtime_problems(runtime)`` says, without importing it, what stops a runtime from running here.

    def knows(self, name: str) -> bool:
        """Whether this family builds ``name``."""

    def names(self, every: bool = False) -> Sequence[str]:
        """The registry's names, listed in messages; ``every=True``: all it knows (for "did you mean")."""

    def default_input_size(self, name: str) -> int:
        """The input side used when the study sets none (the size the weights were trained at)."""

    def resolve_weights(self, name: str, weights, seed: int, params=None) -> WeightsChoice:
        """The config's weights setting as a WeightsChoice; raises WeightsError when it can't be found.

        Random weights use ``random_seed_for(name, seed)``; a file's identity is its sha256. A family
        taking ``params`` (``TAKES_PARAMS = True``) puts whatever of them changes the numbers in the
        identity, which every cache key hashes.
        """

    def problems(self, name: str, weights=None, params=None) -> list[str]:
        """What is wrong with ``weights`` (as set for this backbone) for ``name``, and with its
        ``params`` where the family takes them; [] when fine.

        Checks only that a path exists: no hashing, no reading, no framework.
        """

    def build(self, name: str, choice: WeightsChoice, input_size: int | None = None, batch_size: int = 16,
              mixed_precision: bool = False, params=None) -> Embedder:
        """Load the extractor, importing the framework here. Any framework-global setting (seeds,
        precision policy) is set for the construction only and restored afterwards."""
