"""Exact per-feature SHAP of one saved tree learner (TreeExplainer) on held-out rows, for the beeswarm.

The saved learner is an imblearn Pipeline (fuse → balance → onehot → model); its steps before the
model turn design rows into the columns the trees split on (the sampler is skipped at transform
time, as in predict_proba), so the attributions are over PCA components, clinical variables and
indicators, not over raw embedding dimensions.
"""
from __future__ import annotations

import numpy as np

from models.learners import EncodedClassifier

TREE_LEARNERS = ("xgb", "rf", "et")


def fitted_parts(model):
    """(front pipeline, final step, the bare tree model) of a saved learner.

    A tuned learner keeps its refitted pipeline in ``best_estimator_``; XGBoost sits inside
    ``EncodedClassifier`` (labels 0..k-1), whose fitted booster is ``estimator_``.
    """
    pipe = getattr(model, "best_estimator_", model)
    final = pipe.steps[-1][1]
    return pipe[:-1], final, final.estimator_ if isinstance(final, EncodedClassifier) else final


def feature_names(front):
    """Names of the columns the model sees, through every step that transforms at predict time."""
    names = None
    for _, step in front.steps:
        if step is None or step == "passthrough" or hasattr(step, "fit_resample"):
            continue
        names = step.get_feature_names_out(names)
    return [str(n) for n in names]


def explained_output(tree, Z):
    """What TreeExplainer decomposes, per class column: XGBoost's raw margin (log-odds; one column
    for two classes, the second class's), or a forest's predicted probability."""
    if hasattr(tree, "get_booster"):
        margin = np.asarray(tree.predict(Z, output_margin=True), float)
        return margin.reshape(len(Z), -1)
    return np.asarray(tree.predict_proba(Z), float)


def tree_shap(model, X, classes, only=None):
    """TreeExplainer SHAP values of ``model`` on design rows ``X`` (``only``: keep that class's output;
    with two classes and XGBoost's single margin, the other class's is its negation).

    Returns {"names", "Z" (rows as the trees see them), "values" (rows, features, outputs), "base"
    (outputs,), "outputs" (the class of each output column), "space" ("log-odds" or "probability"),
    "additivity" (largest |sum(values) + base - explained output|)}.
    """
    import shap  # noqa: PLC0415  (slow to import; only the report needs it)

    front, _, tree = fitted_parts(model)
    Z = np.asarray(front.transform(X), float)
    explainer = shap.TreeExplainer(tree)
    values = np.asarray(explainer.shap_values(Z), float)
    base = np.atleast_1d(np.asarray(explainer.expected_value, float))
    if values.ndim == 2:
        values = values[:, :, None]
    outputs = list(classes[-values.shape[2]:]) if values.shape[2] == 1 else list(classes)
    target = explained_output(tree, Z)
    additivity = float(np.abs(values.sum(axis=1) + base - target).max()) if len(Z) else 0.0
    if only is not None and only in outputs:
        k = outputs.index(only)
        values, base, outputs = values[:, :, k:k + 1], base[k:k + 1], [only]
    elif only is not None and len(classes) == 2:
        values, base, outputs = -values, -base, [only]
    return {"names": feature_names(front), "Z": Z, "values": values, "base": base, "outputs": outputs,
            "space": "log-odds" if hasattr(tree, "get_booster") else "probability",
            "additivity": additivity}


def _scaled(v):
    """Feature values to [0, 1] by their 5th-95th percentiles (robust colouring); NaN stays NaN."""
    v = np.asarray(v, float)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return v
    lo, hi = np.percentile(finite, [5, 95])
    return np.clip((v - lo) / (hi - lo), 0, 1) if hi > lo else np.full_like(v, 0.5)


def beeswarm_rows(result, output, clinical, top_k=12):
    """Rows for one output's beeswarm: every clinical variable (a categorical one's one-hot columns
    summed, coloured by category code) plus the ``top_k`` other columns by mean |SHAP|, ordered by
    mean |SHAP|. clinical: {column: kind} of the layout."""
    k = result["outputs"].index(output)
    names, values, Z = result["names"], result["values"][:, :, k], result["Z"]
    rows, used = [], set()
    for column, kind in clinical.items():
        if kind == "categorical":
            idx = [i for i, n in enumerate(names) if n.startswith(f"{column}=")]
            if not idx:
                continue
            codes = np.array([float(names[i].split("=", 1)[1]) for i in idx])
            colour = Z[:, idx] @ codes            # the code of each row's category (one-hot)
        elif column in names:
            idx = [names.index(column)]
            colour = Z[:, idx[0]]
        else:
            continue
        used.update(idx)
        rows.append({"name": f"clinical: {column}", "shap": values[:, idx].sum(axis=1), "colour_t": _scaled(colour)})
    rest = [i for i in range(len(names)) if i not in used]
    rest.sort(key=lambda i: -np.abs(values[:, i]).mean())
    rows += [{"name": names[i], "shap": values[:, i], "colour_t": _scaled(Z[:, i])} for i in rest[:top_k]]
    rows.sort(key=lambda r: -np.abs(r["shap"]).mean())
    return rows
