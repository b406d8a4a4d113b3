"""The handcrafted family: intensity, texture and shape descriptors as a block like any backbone.

The descriptors live in ``features.handcrafted``; it (and scikit-image) is imported only when
sizes, weights or an embedder are asked for, so checking names stays cheap.
"""

from __future__ import annotations

import numpy as np

from features.backbones.protocol import WeightsChoice

HANDCRAFTED = "handcrafted"
NOTE = ""
USES_MASK = True   # the shape descriptors read the lesion mask


def knows(name):
    return name == HANDCRAFTED


def names(every=False):
    return (HANDCRAFTED,)


def default_input_size(name):
    from features import handcrafted  # noqa: PLC0415

    return handcrafted.DEFAULT_SIZE


def problems(name, weights=None, params=None):
    """The block has no weights, so any weights set for it would be silently ignored."""
    if weights is None or weights == "none":
        return []
    return [f"Backbone '{HANDCRAFTED}' takes no weights (got {weights!r}): leave its weights unset."]


def resolve_weights(name, weights, seed, params=None):
    from features import handcrafted  # noqa: PLC0415

    return WeightsChoice("none", f"handcrafted-v{handcrafted.HANDCRAFTED_VERSION}")


class HandcraftedEmbedder:
    """Intensity, texture and shape descriptors as a block like any backbone (no weights)."""

    def __init__(self, input_size=None):
        from features import handcrafted  # noqa: PLC0415
        from features.hashing import version_of  # noqa: PLC0415

        self.name = HANDCRAFTED
        self.input_size = input_size or handcrafted.DEFAULT_SIZE
        self.feature_names = handcrafted.feature_names()
        self.dim = len(self.feature_names)
        self.device = "CPU"
        self.spec = {"backbone": HANDCRAFTED, "kind": "handcrafted",
                     "version": handcrafted.HANDCRAFTED_VERSION, "input_size": self.input_size,
                     "dim": self.dim, "weights": "none",
                     "weights_identity": f"handcrafted-v{handcrafted.HANDCRAFTED_VERSION}",
                     "scikit-image": version_of("scikit-image"), "opencv": version_of("opencv-python-headless")}

    def prepare(self, gray, mask=None, resize_mode="pad"):
        """The whole descriptor is computed here, in the worker threads."""
        from features import handcrafted  # noqa: PLC0415
        from features.preprocess import fit_square, fit_square_mask  # noqa: PLC0415

        square = fit_square(gray, self.input_size, resize_mode)
        sq_mask = fit_square_mask(mask, self.input_size, resize_mode) if mask is not None else None
        return handcrafted.handcrafted_features(square, sq_mask, size=self.input_size)

    def embed(self, vectors):
        return np.asarray(vectors, dtype=np.float32).reshape(len(vectors), self.dim)


def build(name, choice, input_size=None, batch_size=16, mixed_precision=False, params=None):
    """Cheap to build, so not cached; batch size and precision do not apply."""
    return HandcraftedEmbedder(input_size=input_size)
