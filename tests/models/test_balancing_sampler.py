import logging

import numpy as np
import pytest

from models.balancing import FoldSafeOversampler, make_sampler
from models.errors import ModelsError


def mixed_data(n_major=40, n_minor=12, seed=0):
    """Two continuous columns, then two categorical code columns with odd real codes."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_major), np.ones(n_minor)].astype(int)
    cont = rng.normal(size=(len(y), 2)) + y[:, None]
    cats = np.c_[rng.choice([0.0, 3.0, 7.0], len(y)), rng.choice([1.0, 5.0], len(y))]
    return np.hstack([cont, cats]), y


@pytest.mark.parametrize("method", ["smote", "borderline-smote", "adasyn"])
def test_synthetic_rows_carry_only_real_categories(method):
    X, y = mixed_data()
    Xr, yr = make_sampler(method, [-2, -1], random_state=0).fit_resample(X, y)
    assert len(yr) > len(y)
    np.testing.assert_array_equal(Xr[: len(y)], X)
    assert set(Xr[:, 2]) <= {0.0, 3.0, 7.0} and set(Xr[:, 3]) <= {1.0, 5.0}


def test_smote_with_categorical_columns_uses_smotenc():
    X, y = mixed_data()
    sampler = make_sampler("smote", [2, 3], random_state=0)
    sampler.fit_resample(X, y)
    assert type(sampler.sampler_).__name__ == "SMOTENC"


def test_oversampling_balances_the_classes():
    X, y = mixed_data()
    _, yr = make_sampler("smote", [], random_state=0).fit_resample(X, y)
    assert np.bincount(yr).tolist() == [40, 40]


def test_minority_at_most_k_neighbors_reduces_k_and_records_it(caplog):
    X, y = mixed_data(n_minor=4)
    sampler = make_sampler("smote", [2, 3], random_state=0, k_neighbors=5)
    with caplog.at_level(logging.INFO, logger="models.balancing"):
        _, yr = sampler.fit_resample(X, y)
    assert sampler.k_neighbors_ == 3
    assert "k_neighbors reduced from 5 to 3" in sampler.notes_[0]
    assert "k_neighbors reduced" in caplog.text
    assert np.bincount(yr).tolist() == [40, 40]


def test_single_minority_row_skips_oversampling_for_that_fold():
    X, y = mixed_data(n_minor=1)
    sampler = make_sampler("smote", [], random_state=0)
    Xr, yr = sampler.fit_resample(X, y)
    np.testing.assert_array_equal(Xr, X)
    assert "skipped" in sampler.notes_[0]


@pytest.mark.parametrize("name", ["class-weight", "none"])
def test_balancing_without_new_rows_has_no_sampler(name):
    assert make_sampler(name, []) is None


def test_unknown_balancing_is_rejected():
    with pytest.raises(ModelsError, match="unknown balancing 'smoteish'"):
        make_sampler("smoteish", [])


def test_same_seed_gives_the_same_synthetic_rows():
    X, y = mixed_data()
    a = FoldSafeOversampler("smote", [2, 3], random_state=3).fit_resample(X, y)[0]
    b = FoldSafeOversampler("smote", [2, 3], random_state=3).fit_resample(X, y)[0]
    np.testing.assert_array_equal(a, b)


def test_adasyn_falls_back_to_smote_when_no_minority_row_borders_the_majority():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 0.1, (30, 2)), rng.normal(100, 0.1, (8, 2))]
    y = np.r_[np.zeros(30), np.ones(8)].astype(int)
    sampler = make_sampler("adasyn", [], random_state=0)
    _, yr = sampler.fit_resample(X, y)
    assert np.bincount(yr).tolist() == [30, 30]
    assert "used SMOTE instead" in sampler.notes_[-1]


def test_only_categorical_columns_use_smoten_with_real_categories():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, size=(40, 2)).astype(float)
    y = np.array(["a"] * 30 + ["b"] * 10)
    sampler = FoldSafeOversampler("smote", categorical_indices=[0, 1], random_state=0)
    Xr, yr = sampler.fit_resample(X, y)
    assert (yr == "b").sum() == 30
    assert set(np.unique(Xr)) <= {0.0, 1.0, 2.0}
    assert "SMOTEN" in sampler.notes_[-1]
