"""cross_fit plans every fit of a comparison at once (shared fronts, deduplicated fits, a cache of
predictions); its numbers must be exactly those of fitting each model as a whole."""
import numpy as np
import pytest

from models_synthetic import FAST_PARAMS, make_design
from models.cross_fit import Comparison, Job, cross_fit
from models.evaluate import cross_validate_learner, evaluate_holdout
from models.layout import ablation_layouts
from models.learners import make_pipeline, make_stack
from models.prediction_cache import PredictionCache
from models.splits import cv_folds, holdout_split

BASES = ["knn", "lr", "rf"]


def _comparison(frame, y, g, seed=0):
    train, test = holdout_split(y, g, test_size=0.25, random_state=seed)
    folds = cv_folds(y[train], g[train], n_splits=3, n_repeats=1, random_state=seed)
    return Comparison(frame.iloc[train], y[train], g[train], folds, frame.iloc[test], y[test],
                      positive=None if len(set(y)) > 2 else "malignant", seed=seed, n_boot=200)


def _jobs(layout, keep=True, learners=("knn", "svm", "lr", "rf"), ablations=("images_only", "clinical_only")):
    common = {"pca_components": 5, "random_state": 0}
    jobs = [Job(n, layout.columns, make_pipeline(n, layout, FAST_PARAMS.get(n), **common), keep)
            for n in learners]
    jobs.append(Job("stack", layout.columns,
                    make_stack(BASES, layout, params=FAST_PARAMS, n_splits=3, **common), keep))
    for name, lay in ablation_layouts(layout, list(ablations)).items():
        jobs.append(Job(f"stack[{name}]", lay.columns,
                        make_stack(BASES, lay, params=FAST_PARAMS, n_splits=3, **common)))
    return jobs


def _whole(job, c):
    X_train, X_test = c.X_train[job.columns], c.X_test[job.columns]
    cv = cross_validate_learner(job.estimator, X_train, c.y_train, c.folds, groups=c.groups_train,
                                positive=c.positive, random_state=c.seed)
    hold = evaluate_holdout(job.estimator, X_train, c.y_train, X_test, c.y_test, groups_train=c.groups_train,
                            n_boot=c.n_boot, random_state=c.seed, positive=c.positive)
    return cv, hold


@pytest.mark.parametrize("n_classes", [2, 3])
def test_numbers_equal_fitting_each_model_whole(n_classes):
    frame, y, g, layout = make_design(n=100, n_classes=n_classes, seed=n_classes)
    c = _comparison(frame, y, g)
    # binary: every kind of job (svm: its own scores in the fold checks); three classes: the stack
    jobs = _jobs(layout) if n_classes == 2 else _jobs(layout, learners=("lr",), ablations=("images_only",))
    planned, _ = cross_fit(jobs, c, n_jobs=2)
    for job in jobs:
        cv, hold = _whole(job, c)
        got_cv, got_hold = planned[job.label]
        np.testing.assert_array_equal(got_cv.oof_proba, cv.oof_proba, err_msg=job.label)
        np.testing.assert_array_equal(got_hold.proba, hold.proba, err_msg=job.label)
        assert got_hold.metrics == hold.metrics
        assert [f["metrics"] for f in got_cv.folds] == cv.fold_metrics
        assert [(f["auc_ci"], f["rank_correlation"], f["flags"]) for f in got_cv.folds] == \
               [(f["auc_ci"], f["rank_correlation"], f["flags"]) for f in cv.folds]
        if job.keep:     # the kept model predicts as the one fitted whole
            X_test = c.X_test[job.columns]
            np.testing.assert_array_equal(got_hold.estimator.predict_proba(X_test),
                                          hold.estimator.predict_proba(X_test))
        else:
            assert got_hold.estimator is None


def test_cache_serves_a_rerun_without_fitting(tmp_path):
    frame, y, g, layout = make_design(n=100, seed=4)
    c = _comparison(frame, y, g)
    jobs = [j for j in _jobs(layout, keep=False)]
    one, counts = cross_fit(jobs, c, PredictionCache(tmp_path))
    written = list(tmp_path.rglob("*.npz"))
    # shared: the main stack's outer base fits are the learners' CV folds and held-out fits (3 bases
    # x 4 splits), and each stack's inner CV on all training rows draws the outer folds again (same
    # seed, same number of folds), so those inner fits are its outer fits (3 stacks x 3 bases x 3)
    assert counts["requested"] - counts["distinct"] == len(BASES) * 4 + 3 * len(BASES) * 3
    assert counts["fitted"] == counts["distinct"] == len(written)
    calls = []
    two, again = cross_fit(jobs, c, PredictionCache(tmp_path), progress=calls.append)
    assert calls == [] and again["cached"] == again["distinct"] == len(written) and again["fitted"] == 0
    for label in one:
        np.testing.assert_array_equal(one[label][0].oof_proba, two[label][0].oof_proba)
        np.testing.assert_array_equal(one[label][1].proba, two[label][1].proba)


def test_cache_key_follows_columns_labels_and_settings(tmp_path):
    frame, y, g, layout = make_design(n=100, seed=5)
    c = _comparison(frame, y, g)
    job = [Job("lr", layout.columns, make_pipeline("lr", layout, pca_components=5, random_state=0))]
    cross_fit(job, c, PredictionCache(tmp_path))
    n = len(list(tmp_path.rglob("*.npz")))
    changed = frame.copy()
    changed.iloc[0, 0] += 1.0                                    # one value of one training row
    cross_fit(job, _comparison(changed, y, g), PredictionCache(tmp_path))
    after_value = len(list(tmp_path.rglob("*.npz")))
    assert after_value > n
    other = [Job("lr", layout.columns, make_pipeline("lr", layout, {"C": 0.1}, pca_components=5, random_state=0))]
    cross_fit(other, c, PredictionCache(tmp_path))
    assert len(list(tmp_path.rglob("*.npz"))) == after_value + n  # every fit of new settings is new


def test_damaged_cache_entry_is_refitted(tmp_path):
    frame, y, g, layout = make_design(n=100, seed=6)
    c = _comparison(frame, y, g)
    job = [Job("lr", layout.columns, make_pipeline("lr", layout, pca_components=5, random_state=0))]
    good = cross_fit(job, c, PredictionCache(tmp_path))[0]["lr"][0].oof_proba
    for path in tmp_path.rglob("*.npz"):
        path.write_bytes(b"not an npz")
    again = cross_fit(job, c, PredictionCache(tmp_path))[0]["lr"][0].oof_proba
    np.testing.assert_array_equal(good, again)
