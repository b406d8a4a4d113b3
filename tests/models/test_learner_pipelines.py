import numpy as np
import pytest
from sklearn.base import clone

from models_synthetic import FAST_PARAMS, make_design
from models.errors import ModelsError
from models.evaluate import cross_validate_learner
from models.layout import FeatureLayout
from models.learners import LEARNERS, make_pipeline, make_stack
from models.splits import cv_folds

LEARNER_NAMES = sorted(LEARNERS)
STACK_BASES = ["knn", "lr"]  # two cheap, different bases are enough to test the stacking


def build(name, layout, **kw):
    """One learner's pipeline, or the stack of all learners, with small test-sized models."""
    if name == "stack":
        return make_stack(STACK_BASES, layout, params=FAST_PARAMS, pca_components=5,
                          random_state=0, n_splits=2, **kw)
    return make_pipeline(name, layout, FAST_PARAMS[name], pca_components=5, random_state=0, **kw)


@pytest.fixture(scope="module")
def permutation_data():
    """Strong signal, plus three label permutations (each with its own folds): averaging three
    null AUCs brings their spread to ~0.03, so ±0.1 is a real test, not a coin toss."""
    X, y, g, layout = make_design(n=240, signal=2.0, seed=3)
    perms = [np.random.default_rng(s).permutation(y) for s in range(3)]
    nulls = [(p, cv_folds(p, g, 5, random_state=s)) for s, p in enumerate(perms)]
    return X, y, g, layout, cv_folds(y, g, 5, random_state=0), nulls


def mean_cv_auc(est, X, y, g, folds):
    return cross_validate_learner(est, X, y, folds, groups=g).summary()["roc_auc"]["mean"]


@pytest.mark.parametrize("name", LEARNER_NAMES + ["stack"])
def test_true_labels_are_learnt_and_permuted_labels_are_not(name, permutation_data):
    X, y, g, layout, folds, nulls = permutation_data
    est = build(name, layout)
    assert mean_cv_auc(est, X, y, g, folds) > 0.8
    null_auc = np.mean([mean_cv_auc(est, X, p, g, f) for p, f in nulls])
    assert abs(null_auc - 0.5) < 0.1


@pytest.mark.parametrize("name", LEARNER_NAMES)
def test_every_learner_handles_three_string_classes(name, design3):
    X, y, g, layout = design3
    est = build(name, layout).fit(X, y)
    proba = est.predict_proba(X.iloc[:10])
    assert list(est.classes_) == ["benign", "malignant", "other"]
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert set(est.predict(X.iloc[:10])) <= set(y)


@pytest.mark.parametrize("name", LEARNER_NAMES)
def test_class_weight_balancing_fits_without_a_sampler(name, design):
    X, y, g, layout = design
    est = build(name, layout, balancing="class-weight")
    assert est.named_steps["balance"] == "passthrough"
    assert est.fit(X, y).predict_proba(X).shape == (len(y), 2)


@pytest.mark.parametrize("balancing", ["smote", "borderline-smote", "adasyn", "none"])
def test_every_balancing_runs_inside_the_pipeline(balancing, design):
    X, y, g, layout = design
    assert build("lr", layout, balancing=balancing).fit(X, y).predict_proba(X).shape[1] == 2


def test_pipeline_steps_are_fuse_balance_onehot_model(design):
    est = build("svm", design[3])
    assert [n for n, _ in est.steps] == ["fuse", "balance", "onehot", "model"]
    assert est.named_steps["balance"].categorical_indices == [-1]


@pytest.mark.parametrize("meta", ["lr", "mlp", "xgb"])
def test_stack_meta_learners_fit_on_out_of_fold_probabilities(meta, design):
    X, y, g, layout = design
    stack = make_stack(["lr", "knn"], layout, meta=meta, pca_components=5, random_state=0,
                       n_splits=3, meta_params={"n_estimators": 10} if meta == "xgb" else None)
    stack.fit(X, y, groups=g)
    assert stack.meta_feature_names() == ["lr:malignant", "knn:malignant"]
    np.testing.assert_allclose(stack.predict_proba(X).sum(1), 1.0)


def test_unknown_learner_and_unknown_parameter_are_config_errors(design):
    with pytest.raises(ModelsError, match="unknown learner 'svc'"):
        make_pipeline("svc", design[3])
    with pytest.raises(ModelsError, match=r"unknown parameters \['n_trees'\] for learner 'rf'"):
        make_pipeline("rf", design[3], {"n_trees": 10})


def test_fitted_pipeline_names_the_features_the_model_sees(design):
    X, y, g, layout = design
    est = build("lr", layout).fit(X, y)
    names = list(est[:-1].get_feature_names_out())
    assert names[:2] == ["mammo/cnn:pc1", "mammo/cnn:pc2"]
    assert names[-4:] == ["density=0", "density=1", "density=2", "density=3"]
    assert len(names) == est.named_steps["model"].n_features_in_


def test_knn_with_more_neighbours_than_rows_uses_every_row_and_says_so():
    from models.learners import CappedKNeighbors

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 3)), np.array(["a", "b", "a", "b", "a"])
    small = CappedKNeighbors(n_neighbors=7, weights="distance").fit(X, y)
    assert "exceeds the 5 training rows" in small.notes_[0] and small.get_params()["n_neighbors"] == 7
    same = CappedKNeighbors(n_neighbors=5, weights="distance").fit(X, y)
    assert same.notes_ == []
    np.testing.assert_allclose(small.predict_proba(X[:2] + 0.1), same.predict_proba(X[:2] + 0.1))


@pytest.mark.parametrize("name", LEARNER_NAMES + ["stack"])
def test_a_pipeline_built_from_the_layout_equals_one_built_from_its_dict_form(name, design):
    X, y, g, layout = design
    from_layout, from_dict = build(name, layout), build(name, layout.to_dict())
    pipes = [p for _, p in from_layout.estimators] if name == "stack" else [from_layout]
    stored = [p.get_params()["fuse__layout"] for p in pipes]
    assert all(isinstance(s, FeatureLayout) and s == layout for s in stored)
    kw = {"groups": g} if name == "stack" else {}
    a = from_layout.fit(X, y, **kw).predict_proba(X)
    b = from_dict.fit(X, y, **kw).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(clone(from_layout).fit(X, y, **kw).predict_proba(X), a)
