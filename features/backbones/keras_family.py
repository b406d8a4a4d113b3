"""The keras family: frozen keras.applications CNNs with global average pooling.

TensorFlow is imported here only, and only when a model is built; names and weights are checked
and resolved (and fingerprinted) without it, so validation and cached runs never import it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.backbones.keras_names import KERAS_APPLICATIONS
from features.backbones.protocol import WeightsChoice, random_seed_for
from features.errors import BackboneError, WeightsError
from features.hashing import file_sha256, version_of

log = logging.getLogger(__name__)
NOTE = "any keras.applications model"
#: The engines that can run the forward pass (``extract.runtime``); the first is the default.
RUNTIMES = ("tensorflow", "openvino")
#: ``build`` takes ``runtime`` and ``cache_dir`` (see ``protocol.Family``).
TAKES_RUNTIME = True


@dataclass(frozen=True)
class BackboneInfo:
    """What we know of a keras.applications model without importing it."""

    class_name: str
    module: str
    input_size: int
    weights_file: str | None  # the official "notop" ImageNet file Keras downloads


_TF_NOTOP = "_weights_tf_dim_ordering_tf_kernels_notop.h5"
#: Registry of the backbones we know; any other keras.applications name works too.
BACKBONES = {
    "resnet50": BackboneInfo("ResNet50", "resnet50", 224, "resnet50" + _TF_NOTOP),
    "resnet101": BackboneInfo("ResNet101", "resnet", 224, "resnet101" + _TF_NOTOP),
    "vgg16": BackboneInfo("VGG16", "vgg16", 224, "vgg16" + _TF_NOTOP),
    "vgg19": BackboneInfo("VGG19", "vgg19", 224, "vgg19" + _TF_NOTOP),
    "efficientnetb0": BackboneInfo("EfficientNetB0", "efficientnet", 224, "efficientnetb0_notop.h5"),
    "densenet121": BackboneInfo("DenseNet121", "densenet", 224, "densenet121" + _TF_NOTOP),
    "densenet201": BackboneInfo("DenseNet201", "densenet", 224, "densenet201" + _TF_NOTOP),
    "inceptionv3": BackboneInfo("InceptionV3", "inception_v3", 299,
                                "inception_v3" + _TF_NOTOP),
}
#: For models whose constructor declares no default size (MobileNetV3).
GENERIC_INPUT_SIZE = 224


def knows(name):
    return name in BACKBONES or name in KERAS_APPLICATIONS


def names(every=False):
    return tuple(BACKBONES) + (tuple(n for n in KERAS_APPLICATIONS if n not in BACKBONES) if every else ())


def default_input_size(name):
    info = BACKBONES.get(name)
    if info:
        return info.input_size
    return KERAS_APPLICATIONS.get(name, (None, None))[1] or GENERIC_INPUT_SIZE


def keras_home():
    """Where Keras caches downloads (``$KERAS_HOME`` or ``~/.keras``), without importing Keras."""
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"])
    home = Path.home()
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def _expected_file(name):
    info = BACKBONES.get(name)
    return info.weights_file if info else None


def _find_in_folder(name, folder):
    expected = _expected_file(name)
    if expected and (folder / expected).is_file():
        return folder / expected
    candidates = sorted(p for p in folder.glob("*.h5") if name.replace("_", "") in p.name.replace("_", "").lower()
                        and ("notop" in p.name or "no_top" in p.name))
    if len(candidates) == 1:
        return candidates[0]
    found = ", ".join(p.name for p in sorted(folder.glob("*.h5"))) or "no .h5 files"
    want = f"'{expected}'" if expected else f"the official Keras '{name}' notop .h5 file"
    raise WeightsError(f"Weights folder {folder} has no file for backbone '{name}': expected {want}; "
                       f"found {found}. Copy the official file there, or pass a file path for this "
                       f"backbone (extract.backbones: [{{name: {name}, weights: /path/file.h5}}]).")


def _not_found(name, weights):
    return (f"Weights for backbone '{name}' not found: {weights} is neither 'imagenet', 'random', "
            f"an existing .h5 file nor a folder.")


def problems(name, weights=None, params=None):
    if weights is None or weights in ("imagenet", "random"):
        return []
    if not isinstance(weights, (str, os.PathLike)):
        return [f"Weights for backbone '{name}': expected 'imagenet', 'random' or a path, got {weights!r}."]
    return [] if Path(weights).expanduser().exists() else [_not_found(name, weights)]


def resolve_weights(name, weights, seed, params=None):
    """Turn the config's weights setting into a WeightsChoice, without importing TensorFlow."""
    if weights == "random":
        s = random_seed_for(name, seed)
        return WeightsChoice("random", f"random:seed={s}", seed=s)
    if weights == "imagenet":
        expected = _expected_file(name)
        cached = keras_home() / "models" / expected if expected else None
        return WeightsChoice("imagenet", f"imagenet:{name}:keras-{version_of('keras')}",
                             path=cached if cached and cached.is_file() else None)
    path = Path(weights).expanduser()
    if path.is_dir():
        path = _find_in_folder(name, path)
    if not path.is_file():
        raise WeightsError(_not_found(name, weights))
    return WeightsChoice("file", f"sha256:{file_sha256(path)}", path=path.resolve())


def runtime_problems(runtime):
    """What stops ``runtime`` from running here ([] when it can), without importing it."""
    from features.backbones import openvino_runtime  # noqa: PLC0415

    if runtime == "openvino" and not openvino_runtime.installed():
        return [openvino_runtime.missing_message()]
    return []


def offline_hint(name, file_name=None):
    file_name = file_name or _expected_file(name) or f"the official '{name}' notop .h5 file"
    return (f"ImageNet weights for '{name}' could not be downloaded (no network?). Either put "
            f"'{file_name}' in {keras_home() / 'models'} (Keras's cache; set KERAS_HOME to move it), or "
            f"pass a local copy with --weights /path/to/{file_name} (or a folder holding it), or use "
            f"--weights random for seeded random weights (only for testing: random features are not "
            f"ImageNet features).")


#: Lines TensorFlow's native code prints at import whatever TF_CPP_MIN_LOG_LEVEL says (TF >= 2.18).
_IMPORT_NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
                 "Unable to register cu", "TF-TRT Warning", "This TensorFlow binary is optimized",
                 "To enable the following instructions", "computation placer already registered",
                 "could not find cuda drivers", "cuda_executor", "Cannot dlopen some GPU libraries")


@contextlib.contextmanager
def _native_stderr_filtered():
    """Hide TensorFlow's import-time chatter (it writes to fd 2 from C++), keep every other line."""
    import tempfile  # noqa: PLC0415
    import sys  # noqa: PLC0415

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):   # no real stderr (embedded interpreters): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not any(noise in line for noise in _IMPORT_NOISE)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def _import_keras():
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # ~1.3-2.7x faster on CPU; read at import
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _native_stderr_filtered():
        import keras  # noqa: PLC0415  (lazy on purpose)
        import tensorflow as tf  # noqa: PLC0415

    return keras, tf


def _keras_constructor(keras, name):
    """The keras.applications class and its module's preprocess_input, for any model name."""
    info = BACKBONES.get(name)
    wanted = info.class_name if info else KERAS_APPLICATIONS.get(name, (None,))[0]
    apps = keras.applications
    if wanted is None or not callable(getattr(apps, wanted, None)):
        raise BackboneError(f"Unknown backbone '{name}': keras {keras.__version__} has no such "
                            f"keras.applications model.")
    ctor = getattr(apps, wanted)
    for attr in dir(apps):
        module = getattr(apps, attr)
        if hasattr(module, "preprocess_input") and getattr(module, wanted, None) is ctor:
            return ctor, module.preprocess_input, f"keras.applications.{attr}.preprocess_input"
    raise BackboneError(f"Backbone '{name}': no preprocess_input found beside keras.applications.{wanted}.")


@contextlib.contextmanager
def _download_guard(name):
    """Fail fast with instructions when Keras cannot fetch ImageNet weights."""
    from keras.src.utils import file_utils  # noqa: PLC0415

    original, seen = file_utils.get_file, {}

    def get_file(fname=None, origin=None, *args, **kwargs):
        seen["fname"] = fname
        path = original(fname, origin, *args, **kwargs)
        seen["path"] = path
        return path

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    file_utils.get_file = get_file
    try:
        yield seen
    except Exception as exc:
        if "URL fetch failure" in str(exc):
            raise WeightsError(offline_hint(name, seen.get("fname"))) from None
        raise
    finally:
        file_utils.get_file = original
        socket.setdefaulttimeout(old_timeout)


#: Keras's own globals that ``set_random_seed`` and ``set_dtype_policy`` write (per thread).
_KERAS_GLOBALS = ("dtype_policy", "global_random_seed", "global_seed_generator")


@contextlib.contextmanager
def scoped_global_state(keras, seed=None, policy=None):
    """Seed and dtype policy for one model's construction, then the process's own put back.

    Seeding uses ``keras.utils.set_random_seed`` as a process-wide call would, so random weights are
    the same numbers; the Python, NumPy, TensorFlow and Keras seeds and the global dtype policy are
    restored afterwards, so building an embedder changes no one else's randomness or precision.
    """
    from keras.src.backend.common import global_state  # noqa: PLC0415
    from tensorflow.python.eager import context  # noqa: PLC0415

    from keras.src.random import seed_generator  # noqa: PLC0415

    saved_keras = {k: global_state.get_global_attribute(k) for k in _KERAS_GLOBALS}
    saved_random, saved_numpy, saved_tf = random.getstate(), np.random.get_state(), context.global_seed()
    shared_random = seed_generator.python_random
    try:
        if policy is not None:
            keras.config.set_dtype_policy(policy)
        if seed is not None:
            keras.utils.set_random_seed(seed)
            # Unseeded initializers draw their seeds from Python's global `random`, which other threads
            # (a Dask worker's event loop) draw from too; a private generator seeded alike gives the
            # same numbers without the race.
            seed_generator.python_random = random.Random(seed)
        yield
    finally:
        seed_generator.python_random = shared_random
        for key, value in saved_keras.items():
            global_state.set_global_attribute(key, value)
        random.setstate(saved_random)
        np.random.set_state(saved_numpy)
        if seed is not None:
            context.set_global_seed(saved_tf)


class KerasEmbedder:
    """A frozen keras.applications model with global average pooling, run on fixed-size batches.

    Fixed-size batches (the last one padded) keep one traced graph and give every image the same
    numbers whatever batch it lands in. ``runtime="openvino"`` runs the same model converted to
    OpenVINO, on the CPU in float32 (``openvino_runtime``), the converted model kept in ``cache_dir``.
    """

    feature_names = None  # CNN features have no names

    def __init__(self, name, choice, input_size=None, batch_size=16, mixed_precision=False, runtime="tensorflow",
                 cache_dir=None):
        if runtime not in RUNTIMES:
            raise BackboneError(f"Unknown runtime {runtime!r} for backbone '{name}': expected one of "
                                f"{', '.join(RUNTIMES)}.")
        self.name, self.choice, self.runtime = name, choice, runtime
        self.input_size = input_size or default_input_size(name)
        self.batch_size = batch_size
        if runtime == "openvino":   # before TensorFlow loads, so a missing package costs nothing
            from features.backbones import openvino_runtime  # noqa: PLC0415

            openvino_runtime.import_openvino()
        keras, tf = _import_keras()
        ctor, self._preprocess, preprocess_name = _keras_constructor(keras, name)
        gpu = runtime == "tensorflow" and tf.config.list_physical_devices("GPU")
        self.device = "GPU" if gpu else "CPU"
        mixed = bool(mixed_precision and self.device == "GPU")
        shape = (self.input_size, self.input_size, 3)
        weights = {"imagenet": "imagenet", "file": str(choice.path), "random": None}[choice.kind]
        try:
            with scoped_global_state(keras, seed=choice.seed if choice.kind == "random" else None,
                                     policy="mixed_float16" if mixed else None), \
                    _download_guard(name) as seen:
                self.model = ctor(include_top=False, weights=weights, input_shape=shape, pooling="avg")
        except ValueError as exc:
            raise WeightsError(f"Backbone '{name}' could not be built with weights {weights!r} at input "
                               f"size {self.input_size}: {exc}") from None
        self.model.trainable = False
        weights_sha = None
        if choice.kind == "imagenet" and seen.get("path"):
            weights_sha = file_sha256(seen["path"])
        elif choice.kind == "file":
            weights_sha = choice.identity.split(":", 1)[1]
        self.dim = int(self.model.output_shape[-1])
        if runtime == "openvino":
            self._forward = self._openvino(weights_sha or choice.identity, keras, tf, cache_dir)
        else:
            self._forward = tf.function(lambda x: self.model(x, training=False),
                                        input_signature=[tf.TensorSpec((batch_size, *shape), tf.float32)])
        self.spec = {"backbone": name, "kind": "keras", "class": self.model.name,
                     "weights": choice.kind, "weights_identity": choice.identity,
                     "weights_sha256": weights_sha, "input_size": self.input_size,
                     "pooling": "avg", "include_top": False,
                     "preprocess_input": preprocess_name, "dim": self.dim,
                     "mixed_precision": mixed, "tensorflow": tf.__version__, "keras": keras.__version__}

    def _openvino(self, weights, keras, tf, cache_dir):
        """The forward pass on OpenVINO, the converted model read from ``cache_dir`` or converted now."""
        from features.backbones import openvino_runtime  # noqa: PLC0415

        versions = {"keras": keras.__version__, "tensorflow": tf.__version__}
        ov_model, converted = openvino_runtime.load_or_convert(self.model, self.name, weights, self.input_size,
                                                               versions, cache_dir)
        log.info("%s: OpenVINO on the CPU, float32 (%s)", self.name,
                 "converted now" + (f", kept in {cache_dir}" if cache_dir else "") if converted
                 else f"converted model read from {cache_dir}")
        return openvino_runtime.OpenVinoForward(ov_model, self.batch_size, self.input_size)

    def prepare(self, gray, mask=None, resize_mode="pad"):
        """Square, 3-channel, backbone-normalised float32 image (runs in worker threads)."""
        from features.preprocess import fit_square  # noqa: PLC0415  (keeps cv2 out of validation)

        square = fit_square(gray, self.input_size, resize_mode).astype(np.float32)
        rgb = np.repeat(square[..., None], 3, axis=-1)
        return np.asarray(self._preprocess(rgb), dtype=np.float32)

    def embed(self, images):
        """Embeddings of a stack of prepared images, any count, in fixed-size batches."""
        images = np.asarray(images, dtype=np.float32)
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            n = len(chunk)
            if n < self.batch_size:
                pad = np.zeros((self.batch_size - n, *chunk.shape[1:]), dtype=np.float32)
                chunk = np.concatenate([chunk, pad])
            out.append(np.asarray(self._forward(chunk), dtype=np.float32)[:n])
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def build(name, choice, input_size=None, batch_size=16, mixed_precision=False, params=None, runtime="tensorflow",
          cache_dir=None):
    """One model per setting per process: extract, explain and predict reuse it."""
    return _build(name, choice, input_size, batch_size, mixed_precision, runtime,
                  Path(cache_dir) if cache_dir is not None and runtime == "openvino" else None)


@functools.lru_cache(maxsize=8)
def _build(name, choice, input_size, batch_size, mixed_precision, runtime, cache_dir):
    return KerasEmbedder(name, choice, input_size, batch_size, mixed_precision, runtime, cache_dir)
