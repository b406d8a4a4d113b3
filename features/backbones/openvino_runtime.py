"""OpenVINO as the CPU runtime of a built Keras model (``extract.runtime: openvino``).

The Keras model is converted once per (backbone, weights, input size, library versions) and the
converted model (OpenVINO IR, float32) kept on disk, so later runs only load it. It runs in float32
on the CPU: OpenVINO's default on CPUs with bfloat16 units (AVX512_BF16, AMX) is bfloat16, which
moves embeddings by ~0.5 %; float32 keeps them within ~2e-6 of TensorFlow's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from features.errors import BackboneError
from features.hashing import hash_json

log = logging.getLogger(__name__)

#: The version requirements-openvino.txt pins (the one measured and tested).
PINNED = "openvino==2026.4.1"
#: Bumped when what is cached changes (conversion options, file layout).
FORMAT = 1
#: float32 on the CPU whatever the CPU offers (see the module docstring).
CPU_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def missing_message():
    return (f"'openvino' needs the OpenVINO package, which is not installed in this Python ({sys.executable}). "
            f"Install it with `pip install -r requirements-openvino.txt` ({PINNED}; `make setup` installs it), "
            f"or set extract.runtime: tensorflow.")


def installed():
    """Whether openvino can be imported, without importing it (validation stays cheap)."""
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):   # a module set to None in sys.modules, a broken parent package
        return False


@contextlib.contextmanager
def _telemetry_left_out():
    """Import openvino without its usage telemetry.

    openvino-telemetry (a dependency of the wheel) sends events to Intel's analytics at ``import
    openvino`` and at every conversion unless the user opted out; OpenVINO falls back to a silent
    stub when that package cannot be imported, which is what hiding it during the import does.
    """
    hide = "openvino" not in sys.modules and "openvino_telemetry" not in sys.modules
    if hide:
        sys.modules["openvino_telemetry"] = None
    try:
        yield
    finally:
        if hide and sys.modules.get("openvino_telemetry", 0) is None:
            del sys.modules["openvino_telemetry"]


def import_openvino():
    if not installed():
        raise BackboneError(f"extract.runtime: {missing_message()}")
    with _telemetry_left_out():
        try:
            import openvino  # noqa: PLC0415  (optional, lazy on purpose)
        except ImportError as exc:
            raise BackboneError(f"extract.runtime: {missing_message()} (import failed: {exc})") from None
    return openvino


def cache_key(backbone, weights, input_size, versions):
    """The converted model's key: what the IR is made from (weights by content where known)."""
    return hash_json({"openvino_ir": FORMAT, "backbone": backbone, "weights": weights,
                      "input_size": int(input_size), "versions": dict(sorted(versions.items()))})


def _convert(ov, model, input_size):
    """The Keras model as an OpenVINO model with a free batch dimension (one output: the embedding)."""
    with warnings.catch_warnings():
        # OpenVINO calls the functional model with a list of inputs; Keras warns about the structure
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        converted = ov.convert_model(model, input=[-1, input_size, input_size, 3])
    if len(converted.outputs) != 1:
        raise BackboneError(f"OpenVINO conversion of '{model.name}' gave {len(converted.outputs)} outputs, "
                            f"expected one (the pooled embedding); use extract.runtime: tensorflow.")
    return converted


def _save(ov, converted, folder):
    """Write the IR whole under ``folder`` (temporary folder, then rename); False if it cannot be."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        ov.save_model(converted, str(staging / "model.xml"), compress_to_fp16=False)
        try:
            os.replace(staging, folder)
        except OSError:
            if not (folder / "model.xml").is_file():   # not another process's complete copy
                raise
            shutil.rmtree(staging, ignore_errors=True)
        return True
    except OSError as exc:
        log.warning("OpenVINO: could not keep the converted model in %s (%s); it will be converted again "
                    "next time", folder, exc)
        return False


def load_or_convert(model, backbone, weights, input_size, versions, cache_dir):
    """(OpenVINO model, whether it was converted now): read from ``cache_dir`` when there, else
    converted from the Keras ``model`` and kept there (``cache_dir`` None: converted, not kept)."""
    ov = import_openvino()
    key = cache_key(backbone, weights, input_size, {**versions, "openvino": ov.get_version()})
    folder = Path(cache_dir) / f"{backbone}-{input_size}px-{key[:16]}" if cache_dir is not None else None
    if folder is not None and (folder / "model.xml").is_file():
        try:
            return ov.Core().read_model(str(folder / "model.xml")), False
        except RuntimeError as exc:   # a damaged entry: convert again and replace it
            log.warning("OpenVINO: cached model %s could not be read (%s); converting again", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
    converted = _convert(ov, model, input_size)
    if folder is not None and _save(ov, converted, folder):
        return ov.Core().read_model(str(folder / "model.xml")), True   # the same graph every later run loads
    return converted, True


class OpenVinoForward:
    """A converted model compiled for the CPU at a fixed batch shape; called like the TF forward.

    One inference request per thread (a request is not thread-safe; Dask workers run tasks in threads).
    """

    def __init__(self, ov_model, batch_size, input_size):
        ov = import_openvino()
        ov_model.reshape([batch_size, input_size, input_size, 3])
        self.compiled = ov.Core().compile_model(ov_model, "CPU", CPU_CONFIG)
        self._local = threading.local()

    def __call__(self, batch):
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        out = request.infer([np.ascontiguousarray(batch, dtype=np.float32)])
        return np.array(out[self.compiled.output(0)], dtype=np.float32, copy=True)
