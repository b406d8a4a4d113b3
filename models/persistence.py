"""Fitted models saved as data, not code: skops files that load only types on a trusted list.

A pickle runs whatever it holds the moment it is read, so a model file shared by a colleague (or
swapped in a run folder) could run anything. A skops file names the type of every object in it;
``load_model`` refuses a file naming any type outside ``trusted_types()`` before anything in it is
built. XGBoost boosters (model and configuration) and feature layouts are stored inside it in
their own JSON forms, not as XGBoost's binary snapshot or one node per column name.
"""
from __future__ import annotations

import importlib
import json
import pkgutil
import uuid
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import skops.io as sio
from skops.io._audit import NODE_TYPE_MAPPING, Node, get_tree
from skops.io._protocol import PROTOCOL
from skops.io._utils import _get_state, get_module, read_schema
from sklearn.base import BaseEstimator
from xgboost import Booster
from xgboost.core import XGBoostError

from .errors import ModelsError
from .layout import FeatureLayout

_PACKAGE = __name__.rsplit(".", 1)[0]
_BOOSTER = f"{get_module(Booster)}.{Booster.__name__}"
# What can go wrong reading a damaged file (truncated zip, bad CRC, broken JSON or array member).
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, TypeError, XGBoostError)

# scikit-learn's internal types inside our fitted learners: skops trusts sklearn's public estimators
# by default, not the objects they hold. Anything else in a file is refused.
SKLEARN_INTERNALS = (
    "sklearn.tree._tree.Tree",                                      # rf, et (nodes checked on load)
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",  # mlp (solver adam or sgd)
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.neighbors._kd_tree.KDTree",                            # knn and SMOTE's neighbour search
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._scorer._Scorer",                              # a tuned learner's search
    "sklearn.metrics._ranking.roc_auc_score",
    "sklearn.model_selection._split._CVIterableWrapper",
)
# numpy and scipy objects skops stores as plain arrays (no pickle): dtypes, and the sparse one-hot
# matrix SMOTENC's neighbour search is fitted on.
ARRAY_TYPES = ("numpy.dtype", "scipy.sparse._csr.csr_matrix")


class ModelFileError(ModelsError):
    """A model file that cannot be loaded: not a model file, damaged, or holding untrusted types."""

    def __init__(self, path, reason, untrusted=()):
        self.path = Path(path)
        self.reason = reason
        self.untrusted = sorted(untrusted)
        super().__init__(f"{path}: {reason}")


def _package_modules():
    package = importlib.import_module(_PACKAGE)
    return [importlib.import_module(f"{_PACKAGE}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]


def _name(cls):
    return f"{get_module(cls)}.{cls.__name__}"


def own_types():
    """BreastFuse's estimators (every scikit-learn estimator class defined in this package) and
    the layout they carry as a parameter."""
    found = {_name(obj) for module in _package_modules() for obj in vars(module).values()
             if isinstance(obj, type) and obj.__module__ == module.__name__ and issubclass(obj, BaseEstimator)}
    return sorted(found | {_name(FeatureLayout)})


def built_types():
    """The imbalanced-learn and XGBoost classes this package builds its pipelines from (the names
    its modules import), and the booster an XGBoost model holds."""
    found = {_name(obj) for module in _package_modules() for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, BaseEstimator)
             and obj.__module__.split(".")[0] in ("imblearn", "xgboost")}
    return sorted(found | {_BOOSTER})


def _distance_metrics():
    """The distance metric objects sklearn's neighbour searches hold (one per metric)."""
    from sklearn.metrics import _dist_metrics  # noqa: PLC0415

    bases = (_dist_metrics.DistanceMetric64, _dist_metrics.DistanceMetric32)
    return [_name(c) for c in vars(_dist_metrics).values()
            if isinstance(c, type) and issubclass(c, bases) and c not in bases]


@lru_cache(maxsize=1)
def trusted_types():
    """Every type a BreastFuse model file may name, beyond what skops trusts by default (builtins,
    numpy arrays and ufuncs, scikit-learn's public estimators)."""
    return tuple(sorted({*own_types(), *built_types(), *SKLEARN_INTERNALS, *_distance_metrics(), *ARRAY_TYPES}))


# --- objects stored in their own JSON form -------------------------------------------------
# skops writes a list of strings as one node per string: the layout's ~8k column names, repeated
# in every pipeline of a stack, were 80 MB of schema. A booster's own JSON (model + configuration)
# is XGBoost's documented, version-stable format. Each form is rebuilt only as its own type.

def _booster_members(booster):
    return {"model": bytes(booster.save_raw("json")), "config": booster.save_config().encode()}


def _booster_from(members):
    booster = Booster()
    booster.load_model(bytearray(members["model"]))
    booster.load_config(members["config"].decode("utf-8"))
    return booster


def _layout_members(layout):
    return {"layout": json.dumps(layout.to_dict()).encode()}


def _layout_from(members):
    return FeatureLayout.from_dict(json.loads(members["layout"]))


#: type -> (its members as bytes, the object rebuilt from them)
JSON_FORMS = {Booster: (_booster_members, _booster_from), FeatureLayout: (_layout_members, _layout_from)}
_BY_NAME = {f"{get_module(cls)}.{cls.__name__}": build for cls, (_, build) in JSON_FORMS.items()}
_JSON_NODE = "BreastFuseJsonNode"


def _json_form_state(obj, save_context):
    prefix = f"{uuid.uuid4()}"
    files = {}
    for key, data in JSON_FORMS[type(obj)][0](obj).items():
        files[key] = f"{prefix}.{key}.json"
        save_context.zip_file.writestr(files[key], data)
    return {"__class__": type(obj).__name__, "__module__": get_module(type(obj)), "__loader__": _JSON_NODE,
            "files": files}


class _JsonFormNode(Node):
    """An object rebuilt from its JSON form, only ever as the type that form belongs to."""

    def __init__(self, state, load_context, trusted=None):
        super().__init__(state, load_context, trusted)
        self.members = {key: load_context.src.read(name) for key, name in state["files"].items()}
        self.children = {}

    def _construct(self):
        build = _BY_NAME.get(f"{self.module_name}.{self.class_name}")
        if build is None:
            raise TypeError(f"no JSON form for {self.module_name}.{self.class_name}")
        return build(self.members)


for _cls in JSON_FORMS:
    _get_state.register(_cls)(_json_form_state)
NODE_TYPE_MAPPING[(_JSON_NODE, PROTOCOL)] = _JsonFormNode


# --- saving and loading -----------------------------------------------------------------------

def save_model(estimator, path):
    """Write a fitted estimator as a skops file (deflated at level 1: 40% smaller for 0.8 s more on
    the demo's stack; tree schemas and repeated layouts compress well, PCA components do not)."""
    sio.dump(estimator, path, compression=zipfile.ZIP_DEFLATED, compresslevel=1)


def load_model(path):
    """A fitted estimator from a skops file. The file's schema is read and every type it names
    checked against ``trusted_types()`` before anything is built; damaged files and malformed
    trees are ``ModelFileError`` too (skops' own ``load``, in one pass instead of two)."""
    try:
        with zipfile.ZipFile(path) as archive:
            schema, context = read_schema(archive)
            tree = get_tree(schema, context, trusted=list(trusted_types()))
            untrusted = sorted(tree.get_unsafe_set())
            if untrusted:
                raise ModelFileError(path, f"it holds types BreastFuse does not load: {', '.join(untrusted)}",
                                     untrusted)
            model = tree.construct()
    except ModelFileError:
        raise
    except _DAMAGE as exc:
        raise ModelFileError(path, f"not a readable model file (corrupt or truncated: {exc})") from None
    _check_trees(model, path)
    return model


def load_pickle(path):
    """A model pickled by an older BreastFuse (joblib). Runs whatever the file holds: only for a
    file the user made themselves and says so (``--trust-pickle``)."""
    import joblib  # noqa: PLC0415

    try:
        return joblib.load(path)
    except (*_DAMAGE, ImportError, AttributeError, IndexError) as exc:
        raise ModelFileError(path, f"not a readable pickle (corrupt or truncated: {exc})") from None


# --- scikit-learn trees: indices that predict follows without bounds checks -------------------

def _objects(root):
    """Every object reachable from a fitted model through attributes, lists, tuples and dicts."""
    seen, todo = set(), [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (np.ndarray, str, bytes, int, float, type)):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            todo.extend(obj)
        elif hasattr(obj, "__dict__"):
            todo.extend(vars(obj).values())


def _tree_is_sound(tree):
    n = tree.node_count
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    if not (len(left) == len(right) == len(feature) == n and tree.value.shape[0] == n):
        return False
    inner = left != -1
    nodes = np.arange(n)[inner]
    return bool(np.array_equal(inner, right != -1)
                and np.all((left[inner] > nodes) & (left[inner] < n) & (right[inner] > nodes) & (right[inner] < n))
                and np.all((feature[inner] >= 0) & (feature[inner] < tree.n_features)))


def _check_trees(model, path):
    """Refuse a decision tree whose child or feature indices point outside it (skops can check a
    tree's type, not its content; scikit-learn's predict would read out of bounds)."""
    from sklearn.tree._tree import Tree  # noqa: PLC0415

    if any(isinstance(obj, Tree) and not _tree_is_sound(obj) for obj in _objects(model)):
        raise ModelFileError(path, "a decision tree in it has child or feature indices outside the tree")
