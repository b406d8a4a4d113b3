"""The radiomics family: PyRadiomics' IBSI features (``features.radiomics``) as a block like any backbone.

No weights; its settings are the backbone's ``params`` in the study file. The resolved params and
the PyRadiomics version are written into the WeightsChoice identity (which every cache key hashes),
so changing a param re-embeds, and a run record's choice alone rebuilds the same extractor.

PyRadiomics is mostly Python holding the GIL, so decode threads scale poorly (780 BUSI images on 2
cores: 33 s in one thread, 25 s in two, 18 s in two processes; bench/radiomics_block.py): ``prepare``
only resamples and packs the image and ROI, and ``embed`` farms each batch to worker processes.
A row depends only on its image, never on the batch or on how many processes share it.
"""

from __future__ import annotations

import json
import os

import numpy as np

from features.backbones.protocol import WeightsChoice
from features.errors import BackboneError

RADIOMICS = "radiomics"
NOTE = ""
USES_MASK = True
TAKES_PARAMS = True
#: Params that change how fast, never what: kept out of the identity so caches are shared.
NEUTRAL = ("processes",)
_IDENTITY = "radiomics-v{version}:{package}-{package_version}:"


def knows(name):
    return name == RADIOMICS


def names(every=False):
    return (RADIOMICS,)


def default_input_size(name):
    from features import radiomics  # noqa: PLC0415

    return radiomics.DEFAULTS["resample_to"]


def _split(params):
    """(params that change the features, processes or None)."""
    params = dict(params or {})
    return params, params.pop("processes", None)


def params_problems(params):
    """Problems with the params: ``processes`` checked here, the rest by ``features.radiomics``."""
    from features import radiomics  # noqa: PLC0415

    if not isinstance(params, dict):
        return radiomics.params_problems(params)
    rest, processes = _split(params)
    fine = processes is None or (isinstance(processes, int) and not isinstance(processes, bool) and processes >= 1)
    bad = [] if fine else [f"processes: expected null (every core) or an integer >= 1, got {processes!r}"]
    return bad + radiomics.params_problems(rest)


def problems(name, weights=None, params=None):
    """No weights (any set would be silently ignored); every problem with its params."""
    out = [] if weights is None or weights == "none" else [
        f"Backbone '{RADIOMICS}' takes no weights (got {weights!r}): leave its weights unset."]
    return out + [f"params.{p}" for p in params_problems(params)]


def _resolved(params):
    from features import radiomics  # noqa: PLC0415

    bad = params_problems(params)
    if bad:
        raise BackboneError(f"Backbone '{RADIOMICS}': bad params: " + "; ".join(bad))
    return radiomics.resolve_params(_split(params)[0])


def identity(resolved):
    from features import radiomics  # noqa: PLC0415
    from features.hashing import version_of  # noqa: PLC0415

    head = _IDENTITY.format(version=radiomics.RADIOMICS_VERSION, package=radiomics.PACKAGE,
                            package_version=version_of(radiomics.PACKAGE))
    return head + json.dumps(resolved, sort_keys=True, separators=(",", ":"))


def params_of(choice):
    """The resolved params written in a radiomics WeightsChoice's identity."""
    head, sep, body = choice.identity.partition(":{")
    if not sep or not head.startswith("radiomics-v"):
        raise BackboneError(f"Not a radiomics weights identity: {choice.identity!r}")
    return json.loads("{" + body)


def resolve_weights(name, weights, seed, params=None):
    """No weights: the identity holds the resolved params and the PyRadiomics version."""
    return WeightsChoice("none", identity(_resolved(params)))


def _processes(wanted):
    import multiprocessing  # noqa: PLC0415

    if multiprocessing.current_process().daemon:    # a pool worker (Dask, loky) may not have children
        return 1
    if wanted is not None:
        return wanted
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class RadiomicsEmbedder:
    """PyRadiomics features of each image's ROI; ``feature_names`` are PyRadiomics' own."""

    def __init__(self, params=None, processes=None):
        from features import radiomics  # noqa: PLC0415
        from features.hashing import version_of  # noqa: PLC0415

        self.params = params
        self.name = RADIOMICS
        self.input_size = params["resample_to"]
        self.feature_names = radiomics.feature_names(params)
        self.dim = len(self.feature_names)
        self.device = "CPU"
        self.processes = _processes(processes)
        self._pool = None
        self.spec = {"backbone": RADIOMICS, "kind": "radiomics", "version": radiomics.RADIOMICS_VERSION,
                     "input_size": self.input_size, "dim": self.dim, "weights": "none",
                     "weights_identity": identity(params), "params": params,
                     "pyradiomics_settings": radiomics.pyradiomics_settings(params),
                     radiomics.PACKAGE: version_of(radiomics.PACKAGE), "SimpleITK": version_of("SimpleITK"),
                     "PyWavelets": version_of("PyWavelets"), "opencv": version_of("opencv-python-headless")}

    def prepare(self, gray, mask=None, resize_mode="pad"):
        """Resampled image and ROI, packed (resize_mode does not apply: the aspect is always kept)."""
        from features import radiomics  # noqa: PLC0415

        return radiomics.prepare(gray, mask, self.params)

    def _executor(self):
        if self._pool is None:
            from joblib.externals.loky import ProcessPoolExecutor  # noqa: PLC0415

            # loky, not fork (the parent runs decode threads, which a fork would copy mid-flight) nor
            # spawn (which re-runs the caller's main script, so a script without a main guard fails)
            self._pool = ProcessPoolExecutor(self.processes)
        return self._pool

    def embed(self, packed):
        from features import radiomics  # noqa: PLC0415

        packed = np.asarray(packed)
        n = len(packed)
        if self.processes <= 1 or n <= 1:
            rows = radiomics.features_many(packed, self.params, self.feature_names)
        else:
            chunks = [c for c in np.array_split(packed, min(self.processes, n)) if len(c)]
            rows = np.concatenate(list(self._executor().map(
                radiomics.features_many, chunks, [self.params] * len(chunks), [self.feature_names] * len(chunks))))
        return np.asarray(rows, dtype=np.float32).reshape(n, self.dim)

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


_BUILT: dict[str, RadiomicsEmbedder] = {}


def build(name, choice, input_size=None, batch_size=16, mixed_precision=False, params=None):
    """One embedder per params per process (its worker processes are reused).

    The features' params are those written in ``choice`` (so a run record's choice alone rebuilds the
    same extractor); ``params``, when given, must agree with them and may add ``processes``. The
    input size does not apply: ``params.resample_to`` sets the resolution.
    """
    resolved, processes = params_of(choice), None
    if params is not None:
        if _resolved(params) != resolved:
            raise BackboneError(f"Backbone '{RADIOMICS}': params {params!r} do not match the resolved "
                                f"weights identity {choice.identity!r}")
        processes = _split(params)[1]
    key = identity(resolved) + f"|processes={processes}"
    if key not in _BUILT:
        _BUILT[key] = RadiomicsEmbedder(resolved, processes)
    return _BUILT[key]
