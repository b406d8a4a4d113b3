"""Optional hyper-parameter tuning: a randomized search nested inside each outer training fold.

The search's own folds are patient-wise, like every other split, and it sees only the rows it is
fitted on, so tuning never peeks at validation or held-out rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import RandomizedSearchCV
from sklearn.utils.validation import check_is_fitted

from .splits import cv_folds


class TunedEstimator(ClassifierMixin, BaseEstimator):
    """RandomizedSearchCV over ``param_distributions`` with patient-wise inner folds, refit on all rows."""

    def __init__(self, estimator, param_distributions, n_iter=10, n_splits=3, scoring=None,
                 random_state=None):
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.n_splits = n_splits
        self.scoring = scoring
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        y = np.asarray(y)
        folds = cv_folds(y, groups, n_splits=self.n_splits, n_repeats=1, random_state=self.random_state)[0]
        scoring = self.scoring or ("roc_auc" if len(np.unique(y)) == 2 else "roc_auc_ovr")
        search = RandomizedSearchCV(self.estimator, self.param_distributions, n_iter=self.n_iter,
                                    scoring=scoring, cv=folds, refit=True,
                                    random_state=self.random_state, error_score="raise")
        search.fit(X, y)
        self.search_ = search
        self.best_params_ = search.best_params_
        self.best_estimator_ = search.best_estimator_
        self.classes_ = search.best_estimator_.classes_
        self.notes_ = [f"tuned: {self.best_params_}"]
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
