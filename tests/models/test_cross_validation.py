import numpy as np
import pandas as pd
import pytest

from models_synthetic import FAST_PARAMS, make_design
from models.balancing import FoldSafeOversampler
from models.evaluate import cross_validate_learner, evaluate_holdout
from models.fusion import FusionTransformer
from models.learners import make_pipeline, make_stack
from models.splits import cv_folds, holdout_split
from models.stacking import StackedPipelines

FIT_LOG = []  # (kind, payload) in fit order; the spies run in this process (n_jobs=1)


class SpyFusion(FusionTransformer):
    """Records the case ids it is fitted on."""

    def fit(self, X, y=None):
        FIT_LOG.append(("fuse", self, set(X.index)))
        return super().fit(X, y)


class SpySampler(FoldSafeOversampler):
    """Records the fused rows it is asked to oversample."""

    def fit_resample(self, X, y, **params):
        FIT_LOG.append(("balance", None, np.array(X, copy=True)))
        return super().fit_resample(X, y, **params)


def spied(pipeline):
    fuse, balance = pipeline.named_steps["fuse"], pipeline.named_steps["balance"]
    return pipeline.set_params(fuse=SpyFusion(**fuse.get_params()),
                               balance=SpySampler(**balance.get_params()))


def fits_by_pipeline():
    """Pairs each recorded fusion fit with the rows its pipeline's sampler then received."""
    out = []
    for (kind, fuse, ids), (kind2, _, rows) in zip(FIT_LOG[::2], FIT_LOG[1::2]):
        assert (kind, kind2) == ("fuse", "balance")
        out.append((fuse, ids, rows))
    return out


def assert_never_saw(X, forbidden, allowed):
    """Neither fusion (PCA, scalers) nor SMOTE was fitted on any forbidden case."""
    assert FIT_LOG
    for fuse, ids, rows in fits_by_pipeline():
        assert ids <= set(X.index[allowed]) and not ids & set(X.index[forbidden])
        fused = lambda idx: {tuple(r) for r in np.round(fuse.transform(X.iloc[idx]), 10)}
        seen = {tuple(r) for r in np.round(rows, 10)}
        assert not seen & fused(forbidden)
        # the sampler got exactly the fused training rows of that fit
        assert seen == {tuple(r) for r in np.round(
            fuse.transform(X.loc[sorted(ids)]), 10)}


def test_fusion_and_smote_never_see_validation_rows(design):
    X, y, g, layout = design
    est = spied(make_pipeline("lr", layout, pca_components=5, random_state=0))
    for train, val in cv_folds(y, g, 4, random_state=0)[0]:
        FIT_LOG.clear()
        cross_validate_learner(est, X, y, [(train, val)])
        assert_never_saw(X, val, train)


def test_stack_base_pipelines_never_see_the_outer_validation_rows(design):
    X, y, g, layout = design
    bases = [(n, spied(make_pipeline(n, layout, FAST_PARAMS[n], pca_components=5,
                                     random_state=0))) for n in ("lr", "knn")]
    stack = StackedPipelines(bases, n_splits=3, random_state=0)
    train, val = cv_folds(y, g, 4, random_state=0)[0][0]
    FIT_LOG.clear()
    cross_validate_learner(stack, X, y, [(train, val)], groups=g)
    assert len(FIT_LOG) == 2 * 2 * (3 + 1)  # two bases, three inner folds plus the refit
    assert_never_saw(X, val, train)


def test_holdout_rows_are_touched_only_for_prediction(design):
    X, y, g, layout = design
    train, test = holdout_split(y, g, 0.25, random_state=0)
    est = spied(make_pipeline("rf", layout, FAST_PARAMS["rf"], pca_components=5, random_state=0))
    FIT_LOG.clear()
    res = evaluate_holdout(est, X.iloc[train], y[train], X.iloc[test], y[test], n_boot=100,
                           random_state=0)
    assert_never_saw(X, test, train)
    assert res.proba.shape == (len(test), 2)
    for name, (lo, hi) in res.ci.items():
        assert lo <= res.metrics[name] <= hi


@pytest.mark.parametrize("name", ["svm", "mlp", "xgb", "stack"])
def test_same_seed_gives_identical_numbers(name, design):
    X, y, g, layout = design
    folds = cv_folds(y, g, 3, n_repeats=2, random_state=0)

    def run():
        est = (make_stack(["knn", "rf"], layout, params=FAST_PARAMS, pca_components=5,
                          random_state=0, n_splits=2) if name == "stack" else
               make_pipeline(name, layout, FAST_PARAMS[name], pca_components=5, random_state=0))
        return cross_validate_learner(est, X, y, folds, groups=g)

    a, b = run(), run()
    np.testing.assert_array_equal(a.oof_proba, b.oof_proba)
    assert a.fold_metrics == b.fold_metrics


def test_results_do_not_depend_on_n_jobs(design):
    X, y, g, layout = design
    folds = cv_folds(y, g, 3, random_state=0)
    est = make_pipeline("xgb", layout, FAST_PARAMS["xgb"], pca_components=5, random_state=0)
    one = cross_validate_learner(est, X, y, folds, n_jobs=1)
    two = cross_validate_learner(est, X, y, folds, n_jobs=2)
    np.testing.assert_array_equal(one.oof_proba, two.oof_proba)


def test_cv_result_holds_probabilities_per_repeat_metrics_times_and_notes(design):
    X, y, g, layout = design
    folds = cv_folds(y, g, 4, n_repeats=2, random_state=0)
    res = cross_validate_learner(lambda: make_pipeline("knn", layout, pca_components=5),
                                 X, y, folds)
    assert res.oof_proba.shape == (2, len(y), 2)
    np.testing.assert_allclose(res.oof_proba.sum(2), 1.0)  # every row validated once per repeat
    assert list(res.classes) == ["benign", "malignant"]
    assert len(res.folds) == 8
    assert all(f["fit_time"] > 0 and f["predict_time"] > 0 for f in res.folds)
    assert 0 <= res.summary()["roc_auc"]["mean"] <= 1
    assert len(res.pooled_metrics(y)) == 2


def test_tiny_minority_in_a_fold_is_fixed_and_recorded(design):
    X, y, g, layout = design
    keep = np.r_[np.flatnonzero(y == "benign"), np.flatnonzero(y == "malignant")[:8]]
    X, y, g = X.iloc[keep], y[keep], g[keep]
    folds = cv_folds(y, g, 2, random_state=0)
    res = cross_validate_learner(make_pipeline("lr", layout, pca_components=5, random_state=0),
                                 X, y, folds)
    notes = [n for f in res.folds for n in f["notes"]]
    assert any("k_neighbors reduced from 5" in n for n in notes)
    assert not np.isnan(res.oof_proba).any()


def test_bad_embeddings_stop_cross_validation_with_a_clear_error(design):
    X, y, g, layout = design
    bad = X.copy()
    bad.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="block 'mammo/cnn'"):
        cross_validate_learner(make_pipeline("lr", layout), bad, y,
                               cv_folds(y, g, 3, random_state=0))


def test_overlapping_train_and_validation_rows_are_rejected(design):
    X, y, g, layout = design
    with pytest.raises(ValueError, match="overlap"):
        cross_validate_learner(make_pipeline("lr", layout), X, y,
                               [(np.arange(0, 80), np.arange(70, 120))])
