"""Which held-out cases the report explains: one rule, shared by the SHAP section and the occlusion
maps (the `explain` stage), so both show the same cases.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SHAP_CASES = 8
MAX_MISTAKES = 4


def complete_cases(frame, indicators):
    """Case ids with every imaging modality present (all missingness indicators 0)."""
    if not indicators:
        return frame.index
    return frame.index[(frame[indicators].fillna(1) == 0).all(axis=1).to_numpy()]


def explained_cases(holdout, classes, positive, eligible, n_cases=SHAP_CASES, max_mistakes=MAX_MISTAKES):
    """The stack's held-out cases to explain: the most confident mistakes first (at most
    ``max_mistakes``), then the most confident of the rest, ``n_cases`` in all.

    holdout: holdout_predictions.csv as a frame; eligible: case ids that may be chosen.
    Returns a frame indexed by case_id with y_true, predicted, confidence, mistake, output (the class
    whose probability is explained: the positive class when binary, else the predicted one) and
    proba:<class> columns; empty when the stack has no eligible held-out case.
    """
    part = holdout[holdout.learner == "stack"].set_index("case_id")
    part = part[part.index.isin(pd.Index(eligible))]
    proba = part[[f"proba:{c}" for c in classes]].to_numpy(float)
    predicted = np.asarray(classes, dtype=object)[proba.argmax(1)] if len(part) else np.array([], object)
    confidence = proba.max(1) if len(part) else np.array([])
    wrong = predicted != part.y_true.to_numpy()
    order = np.argsort(-confidence, kind="mergesort")
    chosen = [i for i in order if wrong[i]][:max_mistakes]
    chosen += [i for i in order if i not in chosen][:max(0, n_cases - len(chosen))]
    target = positive if positive is not None else classes[-1]
    out = part.iloc[chosen][["y_true", *[f"proba:{c}" for c in classes]]].copy()
    out.insert(1, "predicted", predicted[chosen])
    out.insert(2, "confidence", confidence[chosen])
    out.insert(3, "mistake", wrong[chosen])
    out.insert(4, "output", [target] * len(chosen) if len(classes) == 2 else list(predicted[chosen]))
    return out
