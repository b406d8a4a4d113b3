import numpy as np
import pytest
from sklearn import metrics as skm

from models.metrics import METRICS, bootstrap_ci, classification_metrics, summarise_folds


def test_binary_metrics_match_hand_counts_and_sklearn():
    y = np.array(["b", "b", "b", "b", "m", "m", "m"])
    p_m = np.array([0.1, 0.4, 0.6, 0.2, 0.8, 0.3, 0.9])
    proba = np.c_[1 - p_m, p_m]
    got = classification_metrics(y, proba, ["b", "m"], positive="m")
    # predicted m at rows 2, 4, 6 → TP=2, FP=1, FN=1, TN=3
    assert got["specificity"] == pytest.approx(3 / 4)
    assert got["recall"] == pytest.approx(2 / 3)
    assert got["precision"] == pytest.approx(2 / 3)
    pred = np.where(p_m > 0.5, "m", "b")
    t = y == "m"
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="m"))
    assert got["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(t, p_m))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(t, p_m))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(t, p_m))
    assert set(got) == set(METRICS)


def test_positive_class_choice_swaps_sensitivity_and_specificity():
    y = np.array([0, 0, 0, 1, 1])
    proba = np.c_[[0.9, 0.6, 0.3, 0.2, 0.45], [0.1, 0.4, 0.7, 0.8, 0.55]]
    one = classification_metrics(y, proba, [0, 1], positive=1)
    zero = classification_metrics(y, proba, [0, 1], positive=0)
    assert one["recall"] == zero["specificity"] and one["specificity"] == zero["recall"]


def test_three_class_macro_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    raw = rng.random((60, 3)) + np.eye(3)[y] * 0.6
    proba = raw / raw.sum(1, keepdims=True)
    got = classification_metrics(y, proba, [0, 1, 2])
    pred = proba.argmax(1)
    cm = skm.multilabel_confusion_matrix(y, pred)
    spec = np.mean([c[0, 0] / (c[0, 0] + c[0, 1]) for c in cm])
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, average="macro"),
        "recall": skm.recall_score(y, pred, average="macro"),
        "specificity": spec,
        "f1": skm.f1_score(y, pred, average="macro"),
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
        "pr_auc": skm.average_precision_score(np.eye(3)[y], proba, average="macro"),
        "mcc": skm.matthews_corrcoef(y, pred),
        "brier": skm.brier_score_loss(y, proba, labels=[0, 1, 2]),
    }
    assert got == pytest.approx(expected)


def test_tied_scores_give_sklearns_auc_and_average_precision():
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 0])
    s = np.array([0.2, 0.5, 0.5, 0.9, 0.5, 0.1, 0.2, 0.2, 0.9, 0.3])
    got = classification_metrics(y, np.c_[1 - s, s], [0, 1])
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y, s))


def test_bootstrap_interval_brackets_the_estimate_and_repeats_for_a_seed():
    rng = np.random.default_rng(1)
    y = (rng.random(80) < 0.3).astype(int)
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 80), 0, 1)
    proba = np.c_[1 - p, p]
    point = classification_metrics(y, proba, [0, 1])
    ci = bootstrap_ci(y, proba, [0, 1], ["roc_auc", "brier"], n_boot=300, random_state=0)
    for name, (lo, hi) in ci.items():
        assert lo <= point[name] <= hi and lo < hi
    assert ci == bootstrap_ci(y, proba, [0, 1], ["roc_auc", "brier"], n_boot=300, random_state=0)


def test_fold_summary_gives_mean_and_sample_sd():
    out = summarise_folds([{"auc": 0.7}, {"auc": 0.8}, {"auc": 0.9}])
    assert out["auc"]["mean"] == pytest.approx(0.8)
    assert out["auc"]["sd"] == pytest.approx(0.1)
    assert out["auc"]["n"] == 3


def test_labels_outside_the_classes_are_an_error():
    with pytest.raises(ValueError, match="not among the classes"):
        classification_metrics(["a", "z"], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"])
