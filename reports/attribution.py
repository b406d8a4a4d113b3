"""Attributions of the saved models for the report: grouped Shapley values of the stack on a few
held-out cases, TreeExplainer values of one tree learner, and whether the explain stage's occlusion
maps belong to this run. Saved models are only called, never refitted.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .cases import MAX_MISTAKES, SHAP_CASES, complete_cases, explained_cases
from .shapley import grouped_shapley
from .trees import TREE_LEARNERS, tree_shap

log = logging.getLogger(__name__)
SHAP_BACKGROUND = 20
TREE_ROWS = 300     # held-out rows through TreeExplainer, at most


def player_groups(layout, columns):
    """Column indices per player: each embedding block and each clinical variable. Missingness
    indicators are no player: SHAP only mixes rows with every modality present (the fusion refuses
    a block whose NaNs disagree with its indicator), so they are constant."""
    index = {c: i for i, c in enumerate(columns)}
    groups = {block: [index[c] for c in cols] for block, cols in layout["blocks"].items()}
    for column in layout["clinical"]:
        groups[f"clinical: {column}"] = [index[column]]
    return list(groups), list(groups.values())


def _float_codec(frame, categorical):
    """The design rows as floats (categories as codes, since Shapley mixes arrays) and the function
    that turns such rows back into the frame the model expects."""
    codes = {c: pd.Index(sorted(frame[c].dropna().astype(str).unique())) for c in categorical}
    encoded = frame.copy()
    for c in categorical:
        encoded[c] = codes[c].get_indexer(frame[c].astype(str)).astype(float)
        encoded.loc[frame[c].isna(), c] = np.nan

    def decode(rows):
        out = pd.DataFrame(rows, columns=frame.columns)
        for c in categorical:
            values = out[c].to_numpy()
            out[c] = pd.Series([codes[c][int(v)] if np.isfinite(v) else np.nan for v in values], dtype=object)
        return out

    return encoded.astype(float), decode


def stack_shap(saved, frame, is_test, holdout, seed):
    """Grouped Shapley values of the saved stack on a few held-out cases, for ``shap_section``.

    saved: (model, info) as ``ReportInputs.load_model("stack")`` gives it, or None. Returns None
    without a stack, without complete training rows, or without an eligible held-out case.
    """
    if saved is None:
        return None
    model, info = saved
    columns, classes = info["columns"], info["classes"]
    positive = info["positive"] if info["positive"] is not None else classes[-1]
    categorical = [c for c, k in info["layout"]["clinical"].items() if k == "categorical"]
    frame = frame[columns]
    encoded, decode = _float_codec(frame, categorical)
    complete = complete_cases(frame, info["layout"].get("indicators", []))
    rng = np.random.default_rng(seed)
    train = np.flatnonzero(~is_test & frame.index.isin(complete))
    if len(train) == 0:
        return None
    background = encoded.iloc[np.sort(rng.choice(train, min(SHAP_BACKGROUND, len(train)), replace=False))]
    chosen = explained_cases(holdout, classes, positive, complete, SHAP_CASES, MAX_MISTAKES)
    if chosen.empty:
        return None
    cases = chosen.index
    names, groups = player_groups(info["layout"], columns)
    phi, base, fx, method = grouped_shapley(lambda rows: model.predict_proba(decode(rows)),
                                            encoded.loc[cases].to_numpy(), background.to_numpy(),
                                            groups, random_state=seed)
    outputs = [positive] if len(classes) == 2 else list(classes)
    keep = [classes.index(o) for o in outputs]
    return {"groups": names, "outputs": outputs, "phi": phi[:, :, keep], "base": base[keep], "fx": fx[:, keep],
            "cases": list(cases), "y_true": chosen.y_true.tolist(), "predicted": chosen.predicted.tolist(),
            "mistake": chosen.mistake.tolist(), "explained_output": chosen.output.tolist(),
            "method": method, "n_background": len(background)}


def saved_tree_shap(load_model, frame, is_test, seed, positive):
    """TreeExplainer SHAP of the first saved tree learner (xgb, rf, et) on held-out rows, as
    (learner, ``trees.tree_shap``'s dict); (None, None) when the run saved none of them."""
    learner, saved = next(((n, s) for n in TREE_LEARNERS if (s := load_model(n)) is not None), (None, None))
    if saved is None:
        return None, None
    model, info = saved
    X = frame.loc[is_test, info["columns"]]
    if len(X) > TREE_ROWS:
        X = X.iloc[np.sort(np.random.default_rng(seed).choice(len(X), TREE_ROWS, replace=False))]
    classes = list(model.classes_)
    result = tree_shap(model, X, classes, only=positive if len(classes) == 2 else None)
    if result["additivity"] > 1e-4:
        log.warning("report: %s TreeExplainer values miss the model output by %.2g", learner, result["additivity"])
    return learner, result
