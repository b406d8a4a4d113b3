import numpy as np
import pytest

from models.errors import ModelsError
from models.splits import cv_folds, holdout_split, merged_groups


def patients_in(groups, idx):
    return set(np.asarray(groups)[idx])


def test_no_patient_is_in_two_folds_and_every_row_is_validated_once(design):
    X, y, g, _ = design
    for repeat in cv_folds(y, g, n_splits=5, n_repeats=2, random_state=0):
        val = np.concatenate([va for _, va in repeat])
        assert sorted(val) == list(range(len(y)))
        for tr, va in repeat:
            assert not patients_in(g, tr) & patients_in(g, va)


def test_folds_are_stratified(design):
    X, y, g, _ = design
    overall = np.mean(y == "malignant")
    for tr, va in cv_folds(y, g, n_splits=5, random_state=0)[0]:
        assert abs(np.mean(y[va] == "malignant") - overall) < 0.1


def test_repeats_differ_and_a_seed_repeats_exactly(design):
    X, y, g, _ = design
    a = cv_folds(y, g, 5, 2, random_state=7)
    b = cv_folds(y, g, 5, 2, random_state=7)
    assert all(np.array_equal(x[1], z[1]) for x, z in zip(a[0], b[0]))
    assert not all(np.array_equal(x[1], z[1]) for x, z in zip(a[0], a[1]))


def test_extra_groups_tie_rows_transitively():
    groups = ["p1", "p2", "p3", "p4"]
    extra = ["d1", "d1", None, None]  # p1 and p2 share a near-duplicate image
    labels = merged_groups(groups, extra)
    assert labels[0] == labels[1] != labels[2] != labels[3]
    labels = merged_groups(groups, [extra, [None, "d2", "d2", None]])
    assert len(set(labels[:3])) == 1 and labels[3] != labels[0]


def test_extra_grouping_is_honoured_by_folds(design):
    X, y, g, _ = design
    extra = np.array([None] * len(y), dtype=object)
    benign = np.flatnonzero(y == "benign")
    extra[benign[:6]] = "near-duplicate"  # six different patients, one duplicate cluster
    for tr, va in cv_folds(y, g, 5, random_state=0, extra_groups=extra)[0]:
        side = {i in set(va) for i in benign[:6]}
        assert len(side) == 1


def test_holdout_is_patient_wise_stratified_and_sized(design):
    X, y, g, _ = design
    train, test = holdout_split(y, g, test_size=0.25, random_state=0)
    assert not patients_in(g, train) & patients_in(g, test)
    assert sorted(np.r_[train, test]) == list(range(len(y)))
    assert 0.18 < len(test) / len(y) < 0.32
    assert abs(np.mean(y[test] == "malignant") - np.mean(y == "malignant")) < 0.1


def test_one_class_only_is_an_error():
    with pytest.raises(ModelsError, match="only one class"):
        cv_folds(["a"] * 10, None, n_splits=2)


def test_class_with_fewer_groups_than_folds_names_class_count_and_fix():
    y = ["a"] * 20 + ["b"] * 6
    groups = [f"p{i}" for i in range(20)] + ["q1", "q1", "q2", "q2", "q3", "q3"]
    with pytest.raises(ModelsError, match=r"class 'b' occurs in only 3 patient groups.*"
                                          r"use at most 3 folds"):
        cv_folds(y, groups, n_splits=5)


def test_missing_label_is_an_error():
    with pytest.raises(ModelsError, match="missing"):
        cv_folds(np.array(["a", None, "b", "a"], dtype=object), None, n_splits=2)


def test_every_fold_holds_every_class_even_with_large_groups():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 8, 30)
    groups = np.repeat(np.arange(30), sizes)
    y = np.repeat(rng.random(30) < 0.3, sizes).astype(int)
    for tr, va in cv_folds(y, groups, n_splits=4, n_repeats=5, random_state=1)[0]:
        assert set(y[va]) == {0, 1} and set(y[tr]) == {0, 1}
