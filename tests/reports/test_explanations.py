"""The SHAP section's explanations: waterfalls that run from E[f] to f(x), TreeExplainer values that
add up to the tree model's own output, and the occlusion part of the page."""

import re

import numpy as np
import pandas as pd
import pytest

from models.learners import make_pipeline
from reports import plots
from reports.shapley import waterfall_steps
from reports.trees import beeswarm_rows, explained_output, fitted_parts, tree_shap

FAST = {"xgb": {"n_estimators": 20, "max_depth": 2}, "rf": {"n_estimators": 15}, "et": {"n_estimators": 15}}


def _rects(svg):
    return [(float(a), float(b)) for a, b in re.findall(r'data-start="([^"]+)" data-end="([^"]+)"', svg)]


def test_waterfall_starts_at_the_expectation_and_ends_at_the_output():
    rng = np.random.default_rng(1)
    values = rng.normal(0, 0.1, 7)
    steps = waterfall_steps(0.4, values, [f"g{i}" for i in range(7)])
    assert steps[0]["start"] == 0.4
    assert steps[-1]["end"] == pytest.approx(0.4 + values.sum())
    assert all(a["end"] == b["start"] for a, b in zip(steps, steps[1:]))
    sizes = [abs(s["value"]) for s in steps]
    assert sizes == sorted(sizes)                       # the largest attribution lands next to f(x)
    rects = _rects(plots.waterfall_svg(steps, 0.4, 0.4 + values.sum(), "t", "x"))
    assert rects[0][1] == pytest.approx(0.4 + values.sum())    # top bar ends at f(x)
    assert rects[-1][0] == 0.4                                 # bottom bar starts at E[f]


def test_a_long_waterfall_merges_the_smallest_groups_without_losing_their_sum():
    values = np.linspace(-0.05, 0.06, 20)
    steps = waterfall_steps(0.5, values, [f"g{i}" for i in range(20)], max_rows=6)
    assert len(steps) == 6 and steps[0]["label"] == "15 other groups"
    assert steps[-1]["end"] == pytest.approx(0.5 + values.sum())


def test_the_page_has_one_waterfall_per_explained_case_from_its_base_to_its_output(any_run):
    path = any_run[1]
    html = path.read_text(encoding="utf-8")
    cases = pd.read_csv(path.parent / "shap_cases.csv")
    found = re.findall(r'class="waterfall" data-base="([^"]+)" data-fx="([^"]+)"', html)
    assert len(found) == len(cases)
    assert np.allclose(np.array(found, float), cases[["base", "fx"]].to_numpy())


def _design(n=80, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    y[:n_classes] = np.arange(n_classes)
    a = rng.normal(size=(n, 12)) + y[:, None] * 0.8
    b = rng.normal(size=(n, 8))
    frame = pd.DataFrame(np.hstack([a, b]), columns=[f"a{i}" for i in range(12)] + [f"b{i}" for i in range(8)])
    frame["age"] = rng.normal(55, 9, n)
    frame["history"] = rng.choice(["no", "yes", "unknown"], n).astype(object)
    frame["missing:b"] = 0.0
    layout = {"blocks": {"m/cnn": [f"a{i}" for i in range(12)], "u/cnn": [f"b{i}" for i in range(8)]},
              "clinical": {"age": "numeric", "history": "categorical"}, "indicators": ["missing:b"],
              "block_indicators": {"m/cnn": "missing:b", "u/cnn": "missing:b"}}
    return frame, np.array(["benign", "malignant", "normal"])[y], layout


@pytest.mark.parametrize("learner,n_classes", [("xgb", 2), ("xgb", 3), ("rf", 2), ("rf", 3), ("et", 2)])
def test_tree_shap_values_plus_expected_value_reproduce_the_model_output(learner, n_classes):
    frame, y, layout = _design(n_classes=n_classes)
    model = make_pipeline(learner, layout, FAST[learner], pca_components=4, random_state=0).fit(frame, y)
    held_out = frame.iloc[:25]
    result = tree_shap(model, held_out, list(model.classes_))
    front, final, tree = fitted_parts(model)
    Z = front.transform(held_out)
    # the steps before the estimator (the sampler skipped) are exactly what predict_proba uses
    assert np.allclose(final.predict_proba(Z), model.predict_proba(held_out))
    explained = explained_output(tree, Z)
    assert np.allclose(result["values"].sum(axis=1) + result["base"], explained, atol=1e-5)
    assert result["additivity"] < 1e-5
    proba = model.predict_proba(held_out)
    if result["space"] == "log-odds":        # XGBoost: the margin, whose sigmoid / softmax is predict_proba
        link = 1 / (1 + np.exp(-explained[:, 0])) if n_classes == 2 else \
            np.exp(explained) / np.exp(explained).sum(1, keepdims=True)
        assert np.allclose(link, proba[:, 1] if n_classes == 2 else proba, atol=1e-5)
    else:                                     # forests: the probability itself
        assert np.allclose(explained, proba)
    assert len(result["names"]) == Z.shape[1]


def test_a_binary_margin_is_negated_for_the_other_class():
    frame, y, layout = _design()
    model = make_pipeline("xgb", layout, FAST["xgb"], pca_components=4, random_state=0).fit(frame, y)
    result = tree_shap(model, frame.iloc[:10], list(model.classes_), only="benign")
    front, _, tree = fitted_parts(model)
    margin = explained_output(tree, front.transform(frame.iloc[:10]))[:, 0]
    assert result["outputs"] == ["benign"]
    assert np.allclose(result["values"][:, :, 0].sum(1) + result["base"][0], -margin, atol=1e-5)


def test_the_beeswarm_shows_every_clinical_variable_and_the_top_components():
    frame, y, layout = _design()
    model = make_pipeline("rf", layout, FAST["rf"], pca_components=4, random_state=0).fit(frame, y)
    result = tree_shap(model, frame.iloc[:30], list(model.classes_), only="malignant")
    rows = beeswarm_rows(result, "malignant", layout["clinical"], top_k=3)
    names = [r["name"] for r in rows]
    assert {"clinical: age", "clinical: history"} <= set(names) and len(names) == 5
    history = next(r for r in rows if r["name"] == "clinical: history")
    onehot = [i for i, n in enumerate(result["names"]) if n.startswith("history=")]
    assert np.allclose(history["shap"], result["values"][:, onehot, 0].sum(1))
    means = [np.abs(r["shap"]).mean() for r in rows]
    assert means == sorted(means, reverse=True)
    svg = plots.beeswarm_svg(rows, "<b>", "x")
    assert svg.count("<circle") == 5 * 30 and "<b>" not in svg


def test_the_page_has_a_tree_beeswarm_of_the_saved_forest(any_run):
    study, path = any_run
    html = path.read_text(encoding="utf-8")
    assert "saved <strong>rf</strong> model" in html
    n_panels = 1 if "three" not in str(study.run_dir) else 3
    assert html.count('class="beeswarm"') == n_panels
    tree = pd.read_csv(path.parent / "tree_shap.csv")
    assert {"clinical: age"} <= set(tree.feature)


def test_without_occlusion_maps_the_page_says_how_to_make_them(binary_run):
    study, path = binary_run
    html = path.read_text(encoding="utf-8")
    assert 'id="occlusion-missing"' in html and f"run_pipeline.py explain -c {study.path}" in html
    assert "not yet available" not in html
