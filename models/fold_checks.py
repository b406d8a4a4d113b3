"""Checks of one cross-validation fold that a mean ± sd over folds hides: an AUC below chance by more
than its bootstrap noise, and probabilities that rank the rows against the learner's own scores
(a calibration that reversed them). Pure: arrays in, plain data out.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from .metrics import bootstrap_ci

AUC_BELOW_CHANCE = "auc_below_chance"
RANKING_REVERSED = "ranking_reversed"
# a fold is small: a few hundred resamples bound its AUC well enough, in milliseconds
N_BOOT = 200


def _spearman(a, b):
    """Rank correlation; None where either side is constant (nothing to order)."""
    ra, rb = rankdata(a), rankdata(b)
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def rank_correlation(scores, proba) -> float | None:
    """The lowest, over classes, Spearman correlation between a class's probability and the
    learner's own score for it: 1 for any increasing calibration, -1 for a reversed one.

    ``scores`` are decision values (sklearn's layout): one column (the second class's score) for
    two classes, one column per class otherwise.
    """
    scores = np.asarray(scores, dtype=float)
    proba = np.asarray(proba, dtype=float)
    scores = scores.reshape(len(proba), -1)
    pairs = [(scores[:, 0], proba[:, 1])] if proba.shape[1] == 2 and scores.shape[1] == 1 \
        else [(scores[:, j], proba[:, j]) for j in range(min(scores.shape[1], proba.shape[1]))]
    rhos = [r for r in (_spearman(s, p) for s, p in pairs) if r is not None]
    return min(rhos) if rhos else None


def check_fold(y_val, proba, classes, positive=None, scores=None, n_boot=N_BOOT, random_state=0) -> dict:
    """{"auc_ci": [low, high], "rank_correlation": rho or None, "flags": [...]} of one fold.

    ``auc_below_chance``: the upper end of the AUC's stratified-bootstrap 95% interval is below
    0.5. ``ranking_reversed``: ``rank_correlation(scores, proba) < 0`` (only when the learner has
    scores of its own under its calibration, e.g. the svm's SVC decision values).
    """
    low, high = bootstrap_ci(y_val, proba, classes, ("roc_auc",), n_boot=n_boot, random_state=random_state,
                             positive=positive)["roc_auc"]
    rho = None if scores is None else rank_correlation(scores, proba)
    flags = []
    if np.isfinite(high) and high < 0.5:
        flags.append(AUC_BELOW_CHANCE)
    if rho is not None and rho < 0:
        flags.append(RANKING_REVERSED)
    return {"auc_ci": [low, high], "rank_correlation": rho, "flags": flags}


def fold_warnings(folds) -> list[str]:
    """One sentence per flagged fold (records with repeat, fold, metrics, auc_ci, rank_correlation,
    flags), naming the fold and why."""
    out = []
    for f in folds:
        why = []
        if AUC_BELOW_CHANCE in f.get("flags", ()):
            low, high = f["auc_ci"]
            why.append(f"AUC {f['metrics']['roc_auc']:.3f} is below chance (95% interval "
                       f"{low:.3f}–{high:.3f})")
        if RANKING_REVERSED in f.get("flags", ()):
            why.append(f"its probabilities reverse the ranking of its own scores (Spearman "
                       f"{f['rank_correlation']:.2f})")
        if why:
            out.append(f"repeat {f['repeat']}, fold {f['fold']}: " + "; ".join(why))
    return out
