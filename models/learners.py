"""The learner registry and the per-learner pipeline: fuse → balance → one-hot → estimator.

Every learner is built here, so everything fitted on data lives in one imblearn Pipeline that is
cloned and fitted per fold.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from imblearn.pipeline import Pipeline
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import LabelEncoder
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import _num_samples, check_is_fitted
from xgboost import XGBClassifier

from .balancing import BALANCING, make_sampler
from .calibration import MonotoneCalibratedClassifier
from .errors import ModelsError
from .fusion import CategoricalOneHot, FusionTransformer
from .layout import FeatureLayout
from .stacking import StackedPipelines

log = logging.getLogger(__name__)


class EncodedClassifier(ClassifierMixin, BaseEstimator):
    """Fits ``estimator`` on labels encoded 0..k-1, optionally with balanced sample weights.

    XGBoost accepts only 0..k-1 labels, and learners without ``class_weight`` (XGBoost, MLP) are
    balanced through ``sample_weight`` instead.
    """

    def __init__(self, estimator, class_weight=None):
        self.estimator = estimator
        self.class_weight = class_weight

    def fit(self, X, y):
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        kwargs = {}
        if self.class_weight is not None:
            kwargs["sample_weight"] = compute_sample_weight(self.class_weight, y)
        self.estimator_ = clone(self.estimator).fit(X, encoder.transform(y), **kwargs)
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


@dataclass(frozen=True)
class Learner:
    """A registered learner: the estimator class whose ``get_params()`` names the settings a study
    may give it (plus ``extra``, our own settings with their defaults), and ``build(params,
    random_state, balanced)``, which applies our defaults and the balancing."""

    estimator: type
    build: Callable
    extra: Mapping = field(default_factory=dict)

    def parameters(self) -> list[str]:
        return sorted({*self.estimator().get_params(), *self.extra})


def _build(cls, name, defaults, params):
    """Defaults overridden by ``params``; an unknown key is a config error, not a TypeError."""
    valid = set(cls().get_params())
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ModelsError(f"unknown parameters {unknown} for learner '{name}' "
                          f"({cls.__name__}); valid ones: {sorted(valid)}")
    return cls(**{**defaults, **params})


class CappedKNeighbors(KNeighborsClassifier):
    """kNN that still fits when a fold has fewer rows than k (the stack's inner folds of a small
    study): there k is the number of rows, and ``notes_`` says so. Parameters are kNN's own, so
    tuning and settings address them as usual."""

    def fit(self, X, y):
        n = _num_samples(X)
        self.notes_ = []
        self.capped_ = None
        if self.n_neighbors <= n:
            return super().fit(X, y)
        self.notes_.append(f"knn: n_neighbors={self.n_neighbors} exceeds the {n} training rows of a fold; "
                           f"used {n} there")
        self.capped_ = KNeighborsClassifier(**{**self.get_params(), "n_neighbors": n}).fit(X, y)
        self.classes_ = self.capped_.classes_
        return self

    def predict_proba(self, X):
        return super().predict_proba(X) if self.capped_ is None else self.capped_.predict_proba(X)

    def predict(self, X):
        return super().predict(X) if self.capped_ is None else self.capped_.predict(X)


def _knn(params, random_state, balanced):
    if balanced:
        log.info("knn has no class weights; with balancing='class-weight' it is unweighted")
    return _build(CappedKNeighbors, "knn", {"n_neighbors": 7, "weights": "distance"}, params)


# svm's own settings (not SVC's): how its probabilities are calibrated ("sigmoid" or "isotonic")
SVM_CALIBRATION = {"calibration_cv": 3, "calibration_method": "sigmoid"}


def _svm(params, random_state, balanced):
    """RBF SVC, probabilities from a monotone calibration of its decision values (cv=3, sigmoid).

    The SVC fitted on all rows is kept (so its ranking/AUC is the bare SVC's) and a sigmoid is
    fitted on 3-fold out-of-fold decision values, as sklearn 1.9's stated replacement for the
    deprecated SVC(probability=True), CalibratedClassifierCV(ensemble=False), does (same AUC and
    Brier as the internal 5-fold Platt scaling in our benchmark, ~25% less time), but with its
    slope kept positive: sklearn's free slope turned negative on some folds and reversed the SVC's
    ranking (``models.calibration``); where sklearn's slope was positive the probabilities are the
    same. Sigmoid over isotonic by measurement: isotonic ties rows and lost AUC and Brier on BUSI
    binary and on small designs (it did better on 3-class BUSI: ``calibration_method: isotonic``).
    ``calibration_cv``/``calibration_method`` override it.
    """
    params = dict(params)
    calibration = {k: params.pop(k, default) for k, default in SVM_CALIBRATION.items()}
    defaults = {"C": 1.0, "gamma": "scale", "kernel": "rbf", "random_state": random_state,
                "class_weight": "balanced" if balanced else None}
    svc = _build(SVC, "svm", defaults, params)
    return MonotoneCalibratedClassifier(svc, method=calibration["calibration_method"],
                                        cv=calibration["calibration_cv"])


def _forest(cls, name):
    def make(params, random_state, balanced):
        defaults = {"n_estimators": 200, "n_jobs": 1, "random_state": random_state,
                    "class_weight": "balanced" if balanced else None}
        return _build(cls, name, defaults, params)
    return Learner(cls, make)


def _mlp(params, random_state, balanced):
    defaults = {"hidden_layer_sizes": (128,), "alpha": 1e-3, "early_stopping": True,
                "max_iter": 500, "random_state": random_state}
    mlp = _build(MLPClassifier, "mlp", defaults, params)
    return EncodedClassifier(mlp, class_weight="balanced") if balanced else mlp


def _lr(params, random_state, balanced):
    defaults = {"C": 1.0, "max_iter": 2000, "random_state": random_state,
                "class_weight": "balanced" if balanced else None}
    return _build(LogisticRegression, "lr", defaults, params)


def _xgb(params, random_state, balanced):
    defaults = {"n_estimators": 300, "learning_rate": 0.05, "max_depth": 4, "subsample": 0.8,
                "colsample_bytree": 0.8, "tree_method": "hist", "n_jobs": 1,
                "random_state": random_state, "eval_metric": "logloss"}
    xgb = _build(XGBClassifier, "xgb", defaults, params)
    return EncodedClassifier(xgb, class_weight="balanced" if balanced else None)


# name → Learner(estimator class, constructor); adding a learner is one entry
LEARNERS = {
    "knn": Learner(CappedKNeighbors, _knn),
    "svm": Learner(SVC, _svm, SVM_CALIBRATION),
    "rf": _forest(RandomForestClassifier, "rf"),
    "et": _forest(ExtraTreesClassifier, "et"),
    "mlp": Learner(MLPClassifier, _mlp),
    "lr": Learner(LogisticRegression, _lr),
    "xgb": Learner(XGBClassifier, _xgb),
}
META_LEARNERS = ("lr", "mlp", "xgb")
# the meta-learner sees a handful of probability columns: small models suffice
META_DEFAULTS = {"lr": {}, "mlp": {"hidden_layer_sizes": (16,)},
                 "xgb": {"n_estimators": 100, "max_depth": 2}}


def make_estimator(name, params=None, random_state=None, balanced=False):
    """The bare estimator of a registered learner (no fusion, no sampler)."""
    if name not in LEARNERS:
        raise ModelsError(f"unknown learner '{name}'; choose from {sorted(LEARNERS)}")
    return LEARNERS[name].build(dict(params or {}), random_state, balanced)


def make_pipeline(learner, layout, params=None, balancing="smote", pca_components=0.95,
                  random_state=None, k_neighbors=5, memory=None) -> Pipeline:
    """fuse → balance → onehot → model, for one learner; fitted per fold as a whole.

    ``memory`` (a folder) caches the fitted fusion step by its inputs: learners and the stack's
    base pipelines fitted on the same rows then share one PCA fit instead of redoing it.
    """
    if balancing not in BALANCING:
        raise ModelsError(f"unknown balancing '{balancing}'; choose one of {list(BALANCING)}")
    layout = FeatureLayout.coerce(layout)
    n_cat = layout.n_categorical
    # categorical codes are the last n_cat columns of the fused array; negative indices say so
    sampler = make_sampler(balancing, list(range(-n_cat, 0)), random_state, k_neighbors)
    return Pipeline([
        ("fuse", FusionTransformer(layout, pca_components, random_state)),
        ("balance", sampler if sampler is not None else "passthrough"),
        ("onehot", CategoricalOneHot(n_cat)),
        ("model", make_estimator(learner, params, random_state, balancing == "class-weight")),
    ], memory=memory)


def make_stack(base_names, layout, meta="lr", params=None, meta_params=None, balancing="smote",
               pca_components=0.95, random_state=None, k_neighbors=5, n_splits=5,
               n_jobs=None, memory=None) -> StackedPipelines:
    """A stack of full base pipelines with a meta-learner on their out-of-fold probabilities.

    ``params`` maps a base learner name to its overrides. The meta-learner is class-balanced
    unless balancing is "none", so its probabilities share the base learners' balanced footing.
    """
    if meta not in META_LEARNERS:
        raise ModelsError(f"unknown meta-learner '{meta}'; choose from {list(META_LEARNERS)}")
    if not base_names:
        raise ModelsError("a stack needs at least one base learner")
    params = params or {}
    bases = [(name, make_pipeline(name, layout, params.get(name), balancing, pca_components,
                                  random_state, k_neighbors, memory)) for name in base_names]
    final = make_estimator(meta, {**META_DEFAULTS[meta], **(meta_params or {})}, random_state,
                           balanced=balancing != "none")
    return StackedPipelines(bases, final, n_splits=n_splits, random_state=random_state,
                            n_jobs=n_jobs)
