"""Stacking whose base learners are whole pipelines, with a patient-wise inner CV.

Each base pipeline carries its own fusion and SMOTE, so the out-of-fold probabilities that train
the meta-learner come from models that never saw those rows, nor synthetic neighbours of them.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.utils.validation import check_is_fitted

from .splits import cv_folds


def stacked_features(probas, classes):
    """The meta-learner's inputs: each base learner's class probabilities side by side, only the
    positive-class column of each when the problem is binary."""
    keep = slice(1, None) if len(classes) == 2 else slice(None)
    return np.hstack([p[:, keep] for p in probas])


class StackedPipelines(ClassifierMixin, BaseEstimator):
    """Meta-learner on out-of-fold class probabilities of full base pipelines.

    Like sklearn's StackingClassifier(stack_method="predict_proba"), but ``fit`` takes ``groups``
    so the inner folds are patient-wise (StratifiedGroupKFold via ``cv_folds``) rather than
    row-wise. Binary problems pass only the positive-class column of each base learner.
    """

    def __init__(self, estimators, final_estimator=None, n_splits=5, random_state=None,
                 n_jobs=None):
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.n_splits = n_splits
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y, groups=None):
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        inner = cv_folds(y, groups, n_splits=self.n_splits, n_repeats=1,
                         random_state=self.random_state)[0]
        meta = [cross_val_predict(clone(est), X, y, cv=inner, method="predict_proba",
                                  n_jobs=self.n_jobs) for _, est in self.estimators]
        self.final_estimator_ = clone(self._final()).fit(self._stack(meta), y)
        self.estimators_ = [clone(est).fit(X, y) for _, est in self.estimators]
        return self

    @property
    def named_estimators_(self):
        """The fitted base pipelines by name (derived, so a saved stack holds each one once)."""
        return dict(zip([n for n, _ in self.estimators], self.estimators_))

    def _final(self):
        if self.final_estimator is not None:
            return self.final_estimator
        return LogisticRegression(max_iter=2000)

    def _stack(self, probas):
        return stacked_features(probas, self.classes_)

    def assembled(self, fitted_estimators, fitted_final, classes):
        """This stack as if ``fit`` had run, from base pipelines and a meta-learner fitted
        elsewhere on the same rows (``models.cross_fit`` fits the parts once for many models)."""
        self.classes_ = np.asarray(classes)
        self.estimators_ = list(fitted_estimators)
        self.final_estimator_ = fitted_final
        return self

    def meta_feature_names(self):
        """Names of the meta-learner's inputs, e.g. "svm:malignant"."""
        kept = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
        return [f"{name}:{c}" for name, _ in self.estimators for c in kept]

    def predict_proba(self, X):
        check_is_fitted(self, "estimators_")
        meta = self._stack([est.predict_proba(X) for est in self.estimators_])
        return self.final_estimator_.predict_proba(meta)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
