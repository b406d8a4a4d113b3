import re

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn import metrics as skm

from models.clinical import (
    auc,
    bootstrap_interval,
    calibration_intercept_slope,
    choose_threshold,
    decision_curve,
    net_benefit,
    parse_operating_point,
    resample_indices,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
    subgroup_labels,
    subgroup_table,
    threshold_metrics,
)

# ten rows, sorted by probability; the 0.3 row sits exactly on a threshold (positive at >=)
NB_Y = np.array([1, 1, 1, 0, 1, 0, 0, 1, 0, 0], dtype=bool)
NB_P = np.array([0.9, 0.8, 0.7, 0.65, 0.4, 0.35, 0.3, 0.2, 0.15, 0.05])

# eight rows for the operating points; by threshold (positive at >=):
#   t    0.8  0.7  0.6  0.5  0.4  0.3  0.2  0.1
#   TP    1    1    2    3    3    4    4    4     (of 4 positives)
#   FP    0    1    1    1    2    2    3    4     (of 4 negatives)
#   J   .25    0  .25   .5  .25   .5  .25    0     (sens + spec - 1: tie at 0.5 and 0.3)
OP_Y = np.array([0, 0, 1, 0, 1, 1, 0, 1], dtype=bool)
OP_S = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])


def noisy_scores(n, signal, seed):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    return y, expit(signal * (y - 0.5) + rng.normal(size=n))


def test_net_benefit_matches_hand_counts():
    got = net_benefit(NB_Y, NB_P, [0.3, 0.5])
    # t = 0.3: rows with p >= 0.3 are the first seven: TP = 4, FP = 3
    # t = 0.5: the first four: TP = 3, FP = 1
    expected = [4 / 10 - 3 / 10 * (0.3 / 0.7), 3 / 10 - 1 / 10 * (0.5 / 0.5)]
    assert got == pytest.approx(expected)


def test_decision_curve_has_treat_all_and_treat_none_rows():
    table = decision_curve(NB_Y, {"cnn": NB_P}, thresholds=[0.3, 0.5])
    assert list(table.columns) == ["threshold", "model", "net_benefit"]
    nb = table.set_index(["model", "threshold"])["net_benefit"]
    # prevalence 5/10: treat all = 0.5 - 0.5 * t / (1 - t)
    assert nb["treat all", 0.3] == pytest.approx(5 / 10 - 5 / 10 * (0.3 / 0.7))
    assert nb["treat all", 0.5] == pytest.approx(0.0)
    assert (nb["treat none"] == 0).all()
    assert nb["cnn", 0.3] == pytest.approx(4 / 10 - 3 / 10 * (0.3 / 0.7))


def test_decision_curve_default_grid_runs_from_1_to_99_percent():
    table = decision_curve(NB_Y, {"a": NB_P, "b": 1 - NB_P})
    assert table["model"].unique().tolist() == ["a", "b", "treat all", "treat none"]
    grid = table.loc[table["model"] == "a", "threshold"].to_numpy()
    assert len(grid) == 99 and grid[0] == 0.01 and grid[-1] == 0.99 and 0.3 in grid


def test_net_benefit_refuses_thresholds_outside_the_open_unit_interval():
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        net_benefit(NB_Y, NB_P, [0.5, 1.0])


@pytest.mark.parametrize("spec, threshold, sens, spec_", [
    ("youden", 0.5, 0.75, 0.75),                  # J ties at 0.5 and 0.3: the higher one
    ({"sensitivity": 0.75}, 0.5, 0.75, 0.75),     # exactly on target counts
    ({"sensitivity": 0.9}, 0.3, 1.0, 0.5),
    ({"specificity": 0.75}, 0.5, 0.75, 0.75),     # 0.7, 0.6 and 0.5 reach 0.75: the lowest
    ({"specificity": 0.9}, 0.8, 0.25, 1.0),
    ({"threshold": 0.45}, 0.45, 0.75, 0.75),
    (0.45, 0.45, 0.75, 0.75),
])
def test_choose_threshold_rules_on_a_hand_checked_table(spec, threshold, sens, spec_):
    op = parse_operating_point(spec)
    got = choose_threshold(OP_Y, OP_S, op)
    assert got == {"rule": op["rule"], "value": op["value"], "threshold": pytest.approx(threshold),
                   "sensitivity": pytest.approx(sens), "specificity": pytest.approx(spec_)}


def test_specificity_target_above_every_score_puts_the_threshold_above_the_top_score():
    y, s = np.array([True, False, True]), np.array([0.2, 0.9, 0.5])
    got = choose_threshold(y, s, parse_operating_point({"specificity": 0.95}))
    assert got["threshold"] > 0.9 and got["specificity"] == 1.0 and got["sensitivity"] == 0.0


def test_chosen_threshold_is_a_pure_function_of_the_training_arrays():
    y_train, s_train = noisy_scores(200, 2.0, seed=1)
    op = parse_operating_point({"sensitivity": 0.9})
    op_before = dict(op)
    chosen = choose_threshold(y_train, s_train, op)
    frozen = dict(chosen)
    for seed in (2, 3):
        y_test, s_test = noisy_scores(300, 0.5, seed=seed)
        threshold_metrics(y_test, s_test, chosen["threshold"])
    assert chosen == frozen and op == op_before
    assert choose_threshold(y_train, s_train, op) == frozen


def test_choosing_a_threshold_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold(np.ones(5, bool), np.linspace(0, 1, 5), parse_operating_point("youden"))


def test_threshold_metrics_match_sklearn_confusion_matrix():
    y, s = noisy_scores(150, 1.5, seed=4)
    s[:10] = 0.5                                   # ties on the threshold count as positive
    got = threshold_metrics(y, s, 0.5)
    tn, fp, fn, tp = skm.confusion_matrix(y, s >= 0.5).ravel()
    assert (got["n"], got["tp"], got["fp"], got["tn"], got["fn"]) == (150, tp, fp, tn, fn)
    assert got["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert got["specificity"] == pytest.approx(tn / (tn + fp))
    assert got["ppv"] == pytest.approx(tp / (tp + fp))
    assert got["npv"] == pytest.approx(tn / (tn + fn))


def test_threshold_metrics_are_nan_where_undefined():
    got = threshold_metrics(np.zeros(4, bool), [0.1, 0.2, 0.3, 0.4], 0.9)
    assert np.isnan(got["sensitivity"]) and np.isnan(got["ppv"])
    assert got["specificity"] == 1.0 and got["npv"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_read_offs_agree_with_sklearn_roc_curve(seed):
    y, s = noisy_scores(237, 1.5, seed=seed)
    s = np.round(s, 2)                             # plenty of tied scores
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    for target in (0.5, 0.8, 0.9, 0.95):
        assert sensitivity_at_specificity(y, s, target) == \
            pytest.approx(tpr[fpr <= 1 - target + 1e-12].max())
        assert specificity_at_sensitivity(y, s, target) == \
            pytest.approx((1 - fpr[tpr >= target - 1e-12]).max())


def test_auc_matches_sklearn_with_ties():
    y, s = noisy_scores(120, 1.0, seed=5)
    s = np.round(s, 1)
    assert auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert np.isnan(auc(np.ones(3, bool), [0.1, 0.2, 0.3]))


def simulated(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    p = expit(rng.normal(0, 1.5, n))
    return rng.random(n) < p, p


def test_calibrated_probabilities_have_slope_one_and_intercept_zero():
    y, p = simulated()
    got = calibration_intercept_slope(y, p)
    assert got["slope"] == pytest.approx(1.0, abs=0.1)
    assert got["intercept"] == pytest.approx(0.0, abs=0.1)


def test_overconfident_probabilities_have_slope_one_half():
    y, p = simulated(seed=1)
    pushed = expit(2 * np.log(p / (1 - p)))
    assert calibration_intercept_slope(y, pushed)["slope"] == pytest.approx(0.5, abs=0.1)


def test_overestimated_risk_has_intercept_minus_one():
    y, p = simulated(seed=2)
    shifted = expit(np.log(p / (1 - p)) + 1)
    got = calibration_intercept_slope(y, shifted)
    assert got["intercept"] == pytest.approx(-1.0, abs=0.1)
    assert got["slope"] == pytest.approx(1.0, abs=0.1)


def test_intercept_is_calibration_in_the_large_with_the_slope_held_at_one():
    y, p = simulated(seed=3)
    lp = 2 * np.log(p / (1 - p)) + 1               # recalibrating freely gives a = -0.5, b = 0.5
    got = calibration_intercept_slope(y, expit(lp))
    assert got["slope"] == pytest.approx(0.5, abs=0.1)
    # the offset model's score equation: mean predicted risk after the shift = observed rate
    assert np.mean(expit(got["intercept"] + lp)) == pytest.approx(y.mean(), abs=1e-6)
    assert abs(got["intercept"] - -0.5) > 0.2


def test_calibration_is_nan_with_one_class_or_separated_classes():
    one = calibration_intercept_slope(np.zeros(10, bool), np.linspace(0.1, 0.9, 10))
    assert np.isnan(one["intercept"]) and np.isnan(one["slope"])
    separated = calibration_intercept_slope(np.arange(10) >= 5, np.linspace(0.1, 0.9, 10))
    assert np.isnan(separated["slope"])


def patients_with_rows(n_patients=60, seed=0):
    rng = np.random.default_rng(seed)
    size = rng.integers(1, 5, n_patients)
    groups = np.repeat([f"P{i:03d}" for i in range(n_patients)], size)
    label = np.repeat(rng.random(n_patients) < 0.4, size)
    return groups, label


def test_patient_resampling_keeps_every_patient_whole():
    groups, label = patients_with_rows()
    n = len(groups)
    patient_label = pd.Series(label).groupby(groups).first()
    for idx in resample_indices(n, groups=groups, strata=label, n_boot=50, random_state=0):
        taken = pd.Series(np.bincount(idx, minlength=n)).groupby(groups)
        assert (taken.nunique() == 1).all()        # all of a patient's rows, equally often
        drawn = taken.first()
        assert drawn[patient_label].sum() == patient_label.sum()   # positives' patient count kept


def test_a_patients_stratum_is_that_of_its_first_row():
    groups = np.array(["P0", "P0", "P1", "P2"])
    strata = np.array([1, 0, 0, 1])                # P0 counts as stratum 1, so P1 is alone in 0
    for idx in resample_indices(4, groups=groups, strata=strata, n_boot=30, random_state=2):
        assert np.sum(idx == 2) == 1                # P1 drawn exactly once, every time
        assert np.sum(idx == 0) == np.sum(idx == 1)  # P0 whole
        assert np.sum(idx == 0) + np.sum(idx == 3) == 2


def test_row_resampling_within_strata_keeps_class_counts():
    y = np.arange(30) < 9
    for idx in resample_indices(30, strata=y, n_boot=20, random_state=1):
        assert len(idx) == 30 and y[idx].sum() == 9


def test_resampling_is_reproducible_and_checks_lengths():
    a = list(resample_indices(10, n_boot=3, random_state=7))
    b = list(resample_indices(10, n_boot=3, random_state=7))
    assert all((x == y).all() for x, y in zip(a, b))
    with pytest.raises(ValueError, match="one entry per row"):
        resample_indices(10, groups=np.arange(9))


def test_patient_bootstrap_is_not_fooled_by_duplicated_images():
    y, s = noisy_scores(150, 1.2, seed=6)
    patient = np.arange(150)
    y2, s2, patient2 = np.repeat(y, 2), np.repeat(s, 2), np.repeat(patient, 2)

    def width(yy, ss, groups):
        low, high = bootstrap_interval(lambda i: auc(yy[i], ss[i]), len(yy), groups=groups,
                                       strata=yy, n_boot=400, random_state=0)
        return high - low

    original = width(y, s, None)
    patient_level = width(y2, s2, patient2)
    row_level = width(y2, s2, None)
    assert patient_level == pytest.approx(original, rel=0.2)
    assert row_level < 0.85 * patient_level


def test_bootstrap_interval_leaves_nan_draws_out_and_handles_dicts():
    x = np.random.default_rng(0).normal(size=50)

    def statistic(idx):
        return float("nan") if idx[0] % 2 else float(x[idx].mean())

    low, high = bootstrap_interval(statistic, 50, n_boot=200, random_state=0)
    assert np.isfinite(low) and low < x.mean() < high
    both = bootstrap_interval(lambda i: {"mean": x[i].mean(), "never": float("nan")}, 50,
                              n_boot=100, random_state=0)
    assert both["mean"][0] < both["mean"][1] and np.isnan(both["never"]).all()


def test_subgroup_labels_quartiles_name_their_ranges():
    values = np.r_[np.arange(1.0, 21.0), np.nan]
    got = subgroup_labels(values)
    # quartile edges of 1..20: 5.75, 10.5, 15.25
    expected = ["Q1 (1–5.75)"] * 5 + ["Q2 (5.75–10.5)"] * 5 + ["Q3 (10.5–15.25)"] * 5 \
        + ["Q4 (15.25–20)"] * 5 + ["missing"]
    assert got.tolist() == expected and got.dtype == object


def test_subgroup_labels_declared_bands_and_missing():
    got = subgroup_labels([30, 50, 64.9, 65, 80, None, np.nan], bands=[50, 65])
    assert got.tolist() == ["<50", "50–65", "50–65", ">=65", ">=65", "missing", "missing"]


def test_subgroup_labels_categories_and_few_distinct_numbers():
    assert subgroup_labels(["fatty", "dense", "", None, " "]).tolist() == \
        ["fatty", "dense", "missing", "missing", "missing"]
    assert subgroup_labels(np.array([1.0, 2.0, 2.0, np.nan])).tolist() == \
        ["1", "2", "2", "missing"]
    with pytest.raises(ValueError, match="increasing"):
        subgroup_labels([1.0, 2.0], bands=[65, 50])


def test_subgroup_table_counts_match_groupby_and_small_groups_are_too_few():
    y, s = noisy_scores(230, 2.0, seed=7)
    labels = np.r_[np.repeat(["a", "b"], 100), ["c"] * 5, ["d"] * 25]
    y[labels == "d"] = False                       # big enough, but no positives
    table = subgroup_table(y, s, labels, threshold=0.5, n_boot=50, random_state=0)
    counts = pd.DataFrame({"label": labels, "y": y}).groupby("label")["y"].agg(["size", "sum"])
    assert table["subgroup"].tolist() == ["a", "b", "c", "d"]
    assert table["too_few"].tolist() == [False, False, True, True]
    assert table["n"].tolist() == counts["size"].tolist()
    assert table["n_pos"].tolist() == counts["sum"].tolist()
    assert table["prevalence"].to_numpy() == pytest.approx(counts["sum"] / counts["size"])
    small = table.set_index("subgroup").loc["c"]
    assert small["too_few"] and not small["flagged"]
    assert small[["auc", "auc_low", "sensitivity", "auc_diff", "p_heterogeneity"]].isna().all()
    big = table.set_index("subgroup").loc["a"]
    assert big["auc_low"] < big["auc"] < big["auc_high"]
    assert big["auc"] == pytest.approx(auc(y[:100], s[:100]))
    assert big["auc_diff"] == pytest.approx(auc(y[:100], s[:100]) - auc(y[100:], s[100:]))


def test_subgroup_table_flags_a_planted_subgroup_but_not_a_random_split():
    rng = np.random.default_rng(80)
    y, s = noisy_scores(600, 3.0, seed=8)
    labels = np.repeat(["site A", "site B", "site C"], 200)
    noise = labels == "site A"
    s_planted = np.where(noise, rng.random(600), s)   # the model knows nothing at site A
    planted = subgroup_table(y, s_planted, labels, 0.5, n_boot=300, random_state=0)
    planted = planted.set_index("subgroup")
    assert planted.loc["site A", "auc"] == pytest.approx(0.5, abs=0.1)
    assert planted.loc["site A", "flagged"] and planted.loc["site A", "auc_diff"] < 0
    random_split = subgroup_table(y, s, rng.permutation(labels), 0.5, n_boot=300,
                                  random_state=0)
    assert not random_split["flagged"].any()


def test_subgroup_table_resamples_patients_when_groups_are_given():
    y, s = noisy_scores(120, 2.0, seed=9)
    y, s = np.repeat(y, 2), np.repeat(s, 2)
    patient, labels = np.repeat(np.arange(120), 2), np.repeat(["x", "y"], 120)
    rows = subgroup_table(y, s, labels, 0.5, groups=patient, n_boot=200, random_state=0)
    by_row = subgroup_table(y, s, labels, 0.5, n_boot=200, random_state=0)
    assert (rows["auc_high"] - rows["auc_low"] > by_row["auc_high"] - by_row["auc_low"]).all()


@pytest.mark.parametrize("spec, expected", [
    ("youden", {"rule": "youden", "value": None}),
    ({"sensitivity": 0.95}, {"rule": "sensitivity", "value": 0.95}),
    ({"specificity": 0.9}, {"rule": "specificity", "value": 0.9}),
    ({"threshold": 0.3}, {"rule": "threshold", "value": 0.3}),
    (0.3, {"rule": "threshold", "value": 0.3}),
])
def test_parse_operating_point_accepted_forms(spec, expected):
    assert parse_operating_point(spec) == expected


@pytest.mark.parametrize("spec", [
    "youdn", {"sensitivity": 95}, {"sensitivity": 0.9, "specificity": 0.8}, {"ppv": 0.5},
    0, 1.0, True, None, [0.5], {"threshold": "0.3"}, float("nan"), {"specificity": 1.0},
])
def test_parse_operating_point_refuses_other_forms_and_names_the_accepted_ones(spec):
    with pytest.raises(ValueError, match=re.escape("'youden', {'sensitivity': v}")):
        parse_operating_point(spec)


def test_a_subgroup_is_not_flagged_against_a_rest_too_small_to_judge():
    rng = np.random.default_rng(3)
    y = np.r_[rng.random(40) < 0.4, [True, False, True]]
    score = np.r_[np.where(y[:40], 0.7, 0.3) + rng.normal(0, 0.1, 40), [0.1, 0.9, 0.2]]
    labels = np.array(["big"] * 40 + ["small"] * 3, dtype=object)
    table = subgroup_table(y, score, labels, threshold=0.5, min_n=10, n_boot=300, random_state=0)
    big = table.set_index("subgroup").loc["big"]
    assert big.p_heterogeneity < 0.05        # the rest (3 cases, all ranked wrongly) does differ ...
    assert not big.flagged                   # ... but 3 cases are too few to say the subgroup differs
