"""Each CV fold flags its own failures: an AUC below chance by more than its bootstrap noise, and
probabilities that rank the rows against the learner's own scores; healthy folds stay unflagged."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression

from models.evaluate import cross_validate_learner
from models.fold_checks import check_fold, fold_warnings, rank_correlation
from models.learners import make_pipeline
from models.metrics import classification_metrics
from models.splits import cv_folds

CLASSES = np.array(["benign", "malignant"])


def _proba(p):
    return np.column_stack([1 - p, p])


def _fold(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = CLASSES[np.arange(n) % 2]
    score = (y == "malignant") + rng.normal(0, 0.7, n)
    return y, score


def test_a_healthy_fold_has_no_flag():
    y, score = _fold()
    out = check_fold(y, _proba(1 / (1 + np.exp(-score))), CLASSES, scores=score)
    assert out["flags"] == [] and out["rank_correlation"] == pytest.approx(1.0)
    low, high = out["auc_ci"]
    assert 0.5 < low < high <= 1


def test_probabilities_against_the_learners_own_scores_are_a_reversed_ranking():
    y, score = _fold()
    out = check_fold(y, _proba(1 / (1 + np.exp(score))), CLASSES, scores=score)
    assert "ranking_reversed" in out["flags"] and out["rank_correlation"] == pytest.approx(-1.0)


def test_an_auc_whose_whole_interval_is_below_one_half_is_below_chance():
    y, score = _fold()
    out = check_fold(y, _proba(1 / (1 + np.exp(score))), CLASSES)
    assert out["flags"] == ["auc_below_chance"] and out["auc_ci"][1] < 0.5


def test_a_low_auc_within_its_noise_is_not_flagged():
    y = CLASSES[np.arange(12) % 2]
    p = np.random.default_rng(2).random(12)                    # AUC 0.36 on 12 rows
    out = check_fold(y, _proba(p), CLASSES)
    assert classification_metrics(y, _proba(p), CLASSES)["roc_auc"] < 0.4
    assert out["auc_ci"][0] < 0.5 < out["auc_ci"][1] and out["flags"] == []


def test_rank_correlation_is_the_worst_class_when_multi_class():
    scores = np.arange(30, dtype=float).reshape(10, 3)
    proba = scores / scores.sum(1, keepdims=True)
    proba[:, 1] = proba[::-1, 1]
    assert rank_correlation(scores, proba) == pytest.approx(-1.0)
    assert rank_correlation(scores, np.full((10, 3), 1 / 3)) is None        # flat: nothing ordered


class ReversedCalibration(ClassifierMixin, BaseEstimator):
    """Logistic regression whose 'calibrated' probabilities are its own scores reversed."""

    def fit(self, X, y):
        self.model_ = LogisticRegression().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def uncalibrated_scores(self, X):
        return self.model_.decision_function(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)[:, ::-1]


def test_cross_validation_flags_a_reversed_learner_in_every_fold_and_a_healthy_one_in_none(design):
    X, y, g, layout = design
    folds = cv_folds(y, g, 3, random_state=0)
    bad = make_pipeline("lr", layout, pca_components=5, random_state=0).set_params(model=ReversedCalibration())
    res = cross_validate_learner(bad, X, y, folds, groups=g)
    assert all(f["flags"] == ["auc_below_chance", "ranking_reversed"] for f in res.folds)
    assert [w.split(":")[0] for w in res.warnings()] == ["repeat 0, fold 0", "repeat 0, fold 1", "repeat 0, fold 2"]
    assert "below chance" in res.warnings()[0] and "reverse the ranking" in res.warnings()[0]
    for name in ("svm", "lr"):
        good = cross_validate_learner(make_pipeline(name, layout, pca_components=5, random_state=0),
                                      X, y, folds, groups=g)
        assert all(f["flags"] == [] for f in good.folds) and good.warnings() == [], name
    svm = cross_validate_learner(make_pipeline("svm", layout, pca_components=5, random_state=0), X, y, folds, groups=g)
    assert all(f["rank_correlation"] == pytest.approx(1.0) for f in svm.folds)   # svm's scores were checked


def test_fold_checks_do_not_depend_on_n_jobs(design):
    X, y, g, layout = design
    folds = cv_folds(y, g, 3, random_state=0)
    est = make_pipeline("svm", layout, pca_components=5, random_state=0)
    one, two = (cross_validate_learner(clone(est), X, y, folds, n_jobs=n, random_state=7) for n in (1, 2))
    keys = ("auc_ci", "rank_correlation", "flags")
    assert [{k: f[k] for k in keys} for f in one.folds] == [{k: f[k] for k in keys} for f in two.folds]


def test_warnings_name_the_fold_and_why():
    folds = [{"repeat": 1, "fold": 3, "metrics": {"roc_auc": 0.16}, "auc_ci": [0.08, 0.25],
              "rank_correlation": -0.97, "flags": ["auc_below_chance", "ranking_reversed"]},
             {"repeat": 1, "fold": 4, "metrics": {"roc_auc": 0.8}, "auc_ci": [0.7, 0.9],
              "rank_correlation": 1.0, "flags": []}]
    assert fold_warnings(folds) == [
        "repeat 1, fold 3: AUC 0.160 is below chance (95% interval 0.080–0.250); its probabilities "
        "reverse the ranking of its own scores (Spearman -0.97)"]
