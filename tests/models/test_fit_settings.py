import numpy as np
import pytest

from models.build import STACK, FitSettings, build_estimator, learner_problems, tune_grid
from models.errors import ModelsError
from models.learners import LEARNERS, make_pipeline
from models.stacking import StackedPipelines
from models.tuning import TunedEstimator

LEARNER_NAMES = sorted(LEARNERS)
CHOICES = "(choose from knn, svm, rf, et, mlp, lr, xgb)"
# a valid fit section that touches every kind of setting the checks read
VALID = dict(learners=["knn", "svm", "rf", "xgb"], stack=True, stack_base=["knn", "lr"], meta="lr",
             params={"rf": {"n_estimators": 10}, "svm": {"calibration_cv": 5, "C": 2.0}},
             meta_params={"C": 0.5},
             tune={"rf": {"max_depth": [2, None], "fuse__pca_components": [3, 5]},
                   "svm": {"C": [0.1, 1.0]}, "xgb": {"max_depth": [2, 3]},
                   "knn": {"balance__k_neighbors": [3, 5]}},
             balancing="smote")


def problems(**changes):
    return learner_problems(**{**VALID, **changes})


def test_a_valid_fit_section_has_no_problems():
    assert problems() == []


@pytest.mark.parametrize("name", LEARNER_NAMES)
def test_every_parameter_the_estimator_names_is_accepted(name):
    own = dict.fromkeys(LEARNERS[name].estimator().get_params(), 1)
    assert problems(params={name: own}) == []


def test_svm_accepts_its_calibration_settings_beside_svc_parameters():
    assert {"calibration_cv", "calibration_method", "C", "gamma"} <= set(LEARNERS["svm"].parameters())


@pytest.mark.parametrize("changes, expected", [
    ({"learners": ["knn", "svn", "svm", "rf", "xgb"]},
     f"fit.learners[1]: unknown learner 'svn'; did you mean 'svm'? {CHOICES}"),
    ({"learners": ["knn", "svm", "rf", "xgb", "rf"]}, "fit.learners[4]: 'rf' is listed twice"),
    ({"learners": ["knn", "svm", "rf", "xgb", "stack"]},
     "fit.learners[4]: 'stack' is not a base learner; `stack: true` adds the stack"),
    ({"learners": [], "stack": False, "tune": {}},
     "fit.learners: empty and fit.stack is false: nothing to fit"),
    ({"stack_base": []},
     "fit.stack_base: empty while fit.stack is true: a stack needs at least one base learner"),
    ({"stack_base": ["knn", "boosting"]}, f"fit.stack_base[1]: unknown learner 'boosting' {CHOICES}"),
    ({"meta": "svm"}, "fit.meta: unknown meta-learner 'svm' (choose from lr, mlp, xgb)"),
    ({"meta_params": {"max_iters": 10}}, "fit.meta_params.max_iters: unknown parameter of "
     "LogisticRegression (the lr meta-learner); did you mean 'max_iter'?"),
    ({"params": {"rf": {"n_estimator": 5}}},
     "fit.params.rf.n_estimator: unknown parameter of RandomForestClassifier; did you mean 'n_estimators'?"),
    ({"params": {"svn": {}}}, f"fit.params.svn: unknown learner 'svn'; did you mean 'svm'? {CHOICES}"),
    ({"params": {"rf": 5}}, "fit.params.rf: expected a mapping of parameter to value, got 5"),
    ({"tune": {"rf": {"max_dept": [2]}}},
     "fit.tune.rf.max_dept: unknown parameter of RandomForestClassifier; did you mean 'max_depth'?"),
    ({"tune": {"rf": {"model__max_dept": [2]}}},
     "fit.tune.rf.model__max_dept: unknown parameter of the rf pipeline; did you mean 'model__max_depth'?"),
    ({"tune": {"rf": {"max_depth": []}}}, "fit.tune.rf.max_depth: expected a non-empty list of candidate "
     "values (or a scipy.stats distribution), got []"),
    ({"tune": {"et": {"max_depth": [2]}}}, "fit.tune.et: 'et' is not in fit.learners, so nothing would be "
     "tuned (the stack's base learners are not tuned)"),
    ({"tune": {"svn": {"C": [1]}}}, f"fit.tune.svn: unknown learner 'svn'; did you mean 'svm'? {CHOICES}"),
    ({"balancing": "smot"}, "fit.balancing: unknown balancing 'smot'; did you mean 'smote'? "
     "(choose from smote, borderline-smote, adasyn, class-weight, none)"),
])
def test_each_problem_names_its_key_and_says_what_to_write(changes, expected):
    assert problems(**changes) == [expected]


def test_a_parameter_without_a_close_match_lists_the_estimators_own():
    [message] = problems(params={"knn": {"k": 3}})
    assert message.startswith("fit.params.knn.k: unknown parameter of KNeighborsClassifier "
                              "(its parameters: algorithm, leaf_size, metric")


def test_every_problem_is_reported_at_once():
    found = problems(learners=["svn", "rf"], meta="knn", balancing="smot",
                     params={"rf": {"n_estimator": 5}}, tune={"rf": {"max_dept": [2]}})
    assert [p.split(":")[0] for p in found] == ["fit.learners[0]", "fit.meta", "fit.balancing",
                                                "fit.params.rf.n_estimator", "fit.tune.rf.max_dept"]


def test_problems_are_named_under_the_callers_section():
    assert learner_problems(**{**VALID, "meta": "svm", "where": "study.fit"})[0].startswith("study.fit.meta:")


@pytest.mark.parametrize("name, bare, expected", [("rf", "max_depth", "model__max_depth"),
                                                  ("svm", "C", "model__estimator__C"),
                                                  ("xgb", "max_depth", "model__estimator__max_depth"),
                                                  ("knn", "balance__k_neighbors", "balance__k_neighbors")])
def test_a_bare_tuned_parameter_is_the_estimators_own_wherever_a_wrapper_put_it(name, bare, expected,
                                                                                  design):
    assert list(tune_grid(make_pipeline(name, design[3]), {bare: [1]})) == [expected]


def test_build_estimator_makes_the_stack_a_tuned_search_or_a_plain_pipeline(design):
    settings = FitSettings.from_mapping({**VALID, "pca_components": 5, "n_jobs": 4})
    assert isinstance(build_estimator(STACK, design[3], settings, seed=0), StackedPipelines)
    tuned = build_estimator("svm", design[3], settings, seed=0)
    assert isinstance(tuned, TunedEstimator) and set(tuned.param_distributions) == {"model__estimator__C"}
    plain = build_estimator("lr", design[3], settings, seed=0)
    assert plain.get_params()["fuse__pca_components"] == 5 and plain.get_params()["model__random_state"] == 0


def test_a_tuned_svm_searches_its_svc_parameter_and_fits(design):
    X, y, g, layout = design
    settings = FitSettings(learners=["svm"], pca_components=5, tune={"svm": {"C": [0.1, 10.0]}}, tune_iter=2)
    tuned = build_estimator("svm", layout, settings, seed=0).fit(X, y, groups=g)
    assert set(tuned.best_params_) == {"model__estimator__C"}
    np.testing.assert_allclose(tuned.predict_proba(X[:5]).sum(1), 1.0)


def test_build_estimator_rejects_what_the_checks_would_have_reported(design):
    settings = FitSettings(learners=["rf"], tune={"rf": {"model__max_dept": [2]}})
    with pytest.raises(ModelsError, match="cannot tune"):
        build_estimator("rf", design[3], settings, seed=0)
