"""Paired tests, Shapley attributions and leak warnings on hand-made inputs."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from reports.shapley import grouped_shapley
from reports.stats import delong, holm, leak_warnings, mcnemar, mcnemar_matrix, weights_fallback_banner


def test_mcnemar_uses_the_exact_binomial_test_for_few_discordant_pairs():
    a = np.array([1] * 10 + [1] * 6 + [0] * 1 + [0] * 3, bool)
    b = np.array([1] * 10 + [0] * 6 + [1] * 1 + [0] * 3, bool)
    n01, n10, p, method = mcnemar(a, b)
    assert (n01, n10, method) == (6, 1, "exact")
    assert p == pytest.approx(binomtest(1, 7, 0.5).pvalue)


def test_mcnemar_uses_continuity_corrected_chi_square_for_many_discordant_pairs():
    a = np.array([1] * 20 + [0] * 10, bool)
    b = np.array([0] * 20 + [1] * 10, bool)
    _, _, p, method = mcnemar(a, b)
    assert method == "chi2-cc"
    from scipy.stats import chi2
    assert p == pytest.approx(chi2.sf((abs(20 - 10) - 1) ** 2 / 30, 1))


def test_holm_adjusts_step_down_and_keeps_monotone_order():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]).tolist() == pytest.approx([1.0, 1.0])


def test_mcnemar_matrix_is_symmetric_and_holm_corrected_over_all_pairs():
    y = np.array(list("aabbaabbab"))
    preds = {"x": y.copy(), "y": np.where(np.arange(10) < 5, "a", "b"), "z": np.array(["a"] * 10)}
    out = mcnemar_matrix(y, preds)
    assert [(q["a"], q["b"]) for q in out["pairs"]] == [("x", "y"), ("x", "z"), ("y", "z")]
    expected = holm([q["p"] for q in out["pairs"]])
    assert [out["p_holm"][0][1], out["p_holm"][0][2], out["p_holm"][1][2]] == pytest.approx(expected.tolist())
    assert out["p_holm"][2][0] == out["p_holm"][0][2] and out["p_holm"][1][1] is None


def test_delong_of_identical_scores_is_not_significant_and_aucs_match():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(30), np.zeros(30)].astype(bool)
    s = rng.random(60) + y * 0.5
    a, b, _, p = delong(y, s, s)
    assert a == b and p == 1.0
    a, b, z, p = delong(y, s, rng.random(60))
    from sklearn.metrics import roc_auc_score
    assert a == pytest.approx(roc_auc_score(y, s)) and 0 <= p < 0.05


@pytest.mark.parametrize("n_groups", [3, 12])   # exact enumeration, then sampled permutations
def test_grouped_shapley_attributions_sum_to_output_minus_expectation(n_groups):
    rng = np.random.default_rng(1)
    X, background = rng.normal(size=(4, 2 * n_groups)), rng.normal(size=(6, 2 * n_groups))

    def predict(rows):
        z = rows[:, 0] * rows[:, 1] + np.tanh(rows[:, 2:].sum(1))
        p = 1 / (1 + np.exp(-z))
        return np.c_[1 - p, p]

    groups = [[2 * g, 2 * g + 1] for g in range(n_groups)]
    phi, base, fx, _ = grouped_shapley(predict, X, background, groups)
    assert np.allclose(phi.sum(1), fx - base, atol=1e-9)
    assert np.allclose(base, predict(background).mean(0))


def test_grouped_shapley_is_exact_for_an_additive_model():
    rng = np.random.default_rng(2)
    X, background = rng.normal(size=(3, 3)), rng.normal(size=(5, 3))
    w = np.array([1.0, -2.0, 0.5])
    phi, _, _, method = grouped_shapley(lambda r: (r @ w)[:, None], X, background, [[0], [1], [2]])
    assert method == "exact"
    assert np.allclose(phi[:, :, 0], (X - background.mean(0)) * w)


def test_leak_warnings_flag_a_giveaway_column_and_a_tiny_class():
    y = np.array(["a"] * 20 + ["b"] * 20 + ["c"] * 3)
    clinical = pd.DataFrame({"leak": np.r_[np.zeros(20), np.ones(20), np.full(3, 2.0)],
                             "code": ["x"] * 20 + ["y"] * 20 + ["z"] * 3,
                             "noise": np.random.default_rng(0).random(43)})
    text = " ".join(leak_warnings(clinical, y, {"leak": "numeric", "code": "categorical", "noise": "numeric"}))
    assert "'leak'" in text and "'code'" in text and "'noise'" not in text and "Class 'c'" in text


def test_weights_fallback_banner_names_the_blocks():
    assert weights_fallback_banner({"us/vgg16": {"weights_fallback": False}}) is None
    assert "us/resnet50" in weights_fallback_banner({"us/resnet50": {"weights_fallback": True}})


def test_random_weights_asked_for_get_a_banner_too():
    banner = weights_fallback_banner({"us/vgg16": {"weights": "random", "weights_fallback": False},
                                      "us/handcrafted": {"weights": "none", "weights_fallback": False}})
    assert "us/vgg16" in banner and "as the study file asked" in banner and "handcrafted" not in banner
