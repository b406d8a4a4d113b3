"""Plain-data statistics for the report: paired tests, curves, confusion matrices, leak warnings.

Everything here takes arrays and frames and returns numbers, lists and dicts; nothing reads files.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binom, chi2, norm
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

EXACT_BELOW = 25        # discordant pairs under which McNemar uses the exact binomial test


def mcnemar(correct_a, correct_b):
    """McNemar's test on paired correctness: (discordant a-only, b-only, p-value, method)."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n01, n10 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = n01 + n10
    if n == 0:
        return n01, n10, 1.0, "exact"
    if n < EXACT_BELOW:
        return n01, n10, float(min(1.0, 2 * binom.cdf(min(n01, n10), n, 0.5))), "exact"
    stat = (abs(n01 - n10) - 1) ** 2 / n
    return n01, n10, float(chi2.sf(stat, 1)), "chi2-cc"


def holm(pvalues):
    """Holm step-down adjusted p-values, in the input order."""
    p = np.asarray(pvalues, float)
    m = len(p)
    order = np.argsort(p, kind="mergesort")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def mcnemar_matrix(y_true, predictions):
    """Pairwise McNemar over learners' predicted labels; Holm-corrected over all pairs.

    Returns {"learners", "p" (raw, square, None on the diagonal), "p_holm", "pairs": [...]}.
    """
    names = list(predictions)
    y = np.asarray(y_true)
    correct = {n: np.asarray(predictions[n]) == y for n in names}
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            n01, n10, p, method = mcnemar(correct[a], correct[b])
            pairs.append({"a": a, "b": b, "only_a_right": n01, "only_b_right": n10, "p": p, "method": method})
    for pair, adj in zip(pairs, holm([q["p"] for q in pairs]) if pairs else []):
        pair["p_holm"] = float(adj)
    k = len(names)
    raw = [[None] * k for _ in range(k)]
    adjusted = [[None] * k for _ in range(k)]
    for q in pairs:
        i, j = names.index(q["a"]), names.index(q["b"])
        raw[i][j] = raw[j][i] = q["p"]
        adjusted[i][j] = adjusted[j][i] = q["p_holm"]
    return {"learners": names, "p": raw, "p_holm": adjusted, "pairs": pairs}


def _midrank(x):
    order = np.argsort(x, kind="mergesort")
    z = x[order]
    n = len(x)
    t = np.zeros(n)
    i = 0
    while i < n:
        j = i
        while j < n and z[j] == z[i]:
            j += 1
        t[i:j] = 0.5 * (i + j - 1) + 1
        i = j
    out = np.empty(n)
    out[order] = t
    return out


def delong(is_pos, score_a, score_b):
    """DeLong's test for two correlated ROC AUCs on the same cases: (auc_a, auc_b, z, p)."""
    is_pos = np.asarray(is_pos, bool)
    m, n = int(is_pos.sum()), int((~is_pos).sum())
    if m == 0 or n == 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    scores = np.vstack([score_a, score_b]).astype(float)
    pos, neg = scores[:, is_pos], scores[:, ~is_pos]
    tx = np.array([_midrank(r) for r in pos])
    ty = np.array([_midrank(r) for r in neg])
    tz = np.array([_midrank(r) for r in np.hstack([pos, neg])])
    aucs = tz[:, :m].sum(1) / (m * n) - (m + 1) / (2 * n)
    v01 = (tz[:, :m] - tx) / n
    v10 = 1 - (tz[:, m:] - ty) / m
    cov = np.cov(v01) / m + np.cov(v10) / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = aucs[0] - aucs[1]
    if var <= 1e-15:
        return float(aucs[0]), float(aucs[1]), 0.0, 1.0 if abs(diff) < 1e-12 else 0.0
    z = diff / np.sqrt(var)
    return float(aucs[0]), float(aucs[1]), float(z), float(2 * norm.sf(abs(z)))


def delong_vs_best(y_true, scores, target):
    """Each learner's AUC (target class vs rest) against the best learner's, by DeLong."""
    is_pos = np.asarray(y_true) == target
    if is_pos.all() or not is_pos.any():
        return {"target": target, "best": None, "rows": []}
    aucs = {n: roc_auc_score(is_pos, s) for n, s in scores.items()}
    best = max(aucs, key=lambda n: (aucs[n], -list(scores).index(n)))
    rows = []
    for name, s in scores.items():
        if name == best:
            rows.append({"learner": name, "auc": aucs[name], "best_auc": aucs[best], "z": None, "p": None})
            continue
        a, b, z, p = delong(is_pos, s, scores[best])
        rows.append({"learner": name, "auc": a, "best_auc": b, "z": z, "p": p})
    return {"target": target, "best": best, "rows": rows}


def curve_targets(classes, positive):
    """The classes a one-vs-rest curve is drawn for: the positive class, or every class."""
    if len(classes) == 2:
        return [positive if positive is not None else classes[1]]
    return list(classes)


def roc_pr_curves(y_true, proba, target):
    """ROC and precision-recall curves of one class against the rest, as lists."""
    is_pos = np.asarray(y_true) == target
    if is_pos.all() or not is_pos.any():
        return None
    fpr, tpr, _ = roc_curve(is_pos, proba)
    precision, recall, _ = precision_recall_curve(is_pos, proba)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "recall": recall.tolist(),
            "precision": precision.tolist(), "auc": float(roc_auc_score(is_pos, proba)),
            "prevalence": float(is_pos.mean())}


def calibration(y_true, proba, target, n_bins=10):
    """Reliability curve of one class's probability (uniform bins, empty bins dropped)."""
    is_pos = np.asarray(y_true) == target
    observed, predicted = calibration_curve(is_pos, np.clip(proba, 0, 1), n_bins=n_bins)
    return {"predicted": predicted.tolist(), "observed": observed.tolist()}


def confusion(y_true, y_pred, classes):
    """Rows = true class, columns = predicted class, in the order of ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(classes), len(classes)), int)
    for t, p in zip(y_true, y_pred):
        out[index[t], index[p]] += 1
    return out.tolist()


def leak_warnings(clinical, y, kinds, auc_limit=0.95, purity_limit=0.98, min_class=10):
    """Warnings about clinical columns that give the label away, and about tiny classes.

    ``clinical``: frame of the clinical columns; ``kinds``: column -> numeric|ordinal|categorical.
    """
    y = np.asarray(y).astype(str)
    warnings = []
    for name, n in pd.Series(y).value_counts().sort_index().items():
        if n < min_class:
            warnings.append(f"Class '{name}' has only {n} case(s): its metrics and intervals are unstable.")
    classes = sorted(set(y))
    for column, kind in kinds.items():
        values = clinical[column]
        seen = values.notna().to_numpy()
        if seen.sum() < 4:
            continue
        if kind == "categorical":
            codes = values[seen].astype(str).to_numpy()
            if len(set(codes)) >= max(2, seen.sum() / 2):
                continue            # nearly one category per case: an identifier, not a category
            # all classes at once, then each class against the rest (a column that only singles
            # out the normals of a three-class study gives that class away too)
            targets = [("the classes", y[seen])] + [(f"class '{c}' from the rest", y[seen] == c)
                                                     for c in (classes if len(classes) > 2 else [])]
            for what, target in targets:
                table = pd.crosstab(codes, target)
                purity = table.max(axis=1).sum() / table.to_numpy().sum()
                if purity >= purity_limit:
                    warnings.append(f"Possible label leak: clinical column '{column}' alone separates {what} "
                                    f"({purity:.0%} of cases fall in a category of one class).")
                    break
            continue
        x = pd.to_numeric(values[seen], errors="coerce").to_numpy(float)
        ok = ~np.isnan(x)
        best = 0.0
        for c in classes if len(classes) > 2 else classes[1:]:
            is_pos = y[seen][ok] == c
            if is_pos.all() or not is_pos.any():
                continue
            auc = roc_auc_score(is_pos, x[ok])
            best = max(best, auc, 1 - auc)
        if best >= auc_limit:
            warnings.append(f"Possible label leak: clinical column '{column}' alone predicts the label "
                            f"with ROC AUC {best:.3f}.")
    return warnings


def weights_fallback_banner(blocks):
    """A banner when any CNN block was embedded with random weights: instead of the requested ones
    (the demo's fallback), or because the study asked for them (tests, offline baselines)."""
    fell = [name for name, info in blocks.items() if info.get("weights_fallback")]
    asked = [name for name, info in blocks.items()
             if info.get("weights") == "random" and not info.get("weights_fallback")]
    lines = []
    if fell:
        lines.append(f"Weights fallback: {len(fell)} block(s) used random weights instead of the requested "
                     f"pretrained weights ({', '.join(fell)}).")
    if asked:
        lines.append(f"Random weights: {len(asked)} block(s) were embedded with seeded random weights, as the "
                     f"study file asked ({', '.join(asked)}).")
    if not lines:
        return None
    return " ".join(lines) + " Their results do not reflect ImageNet features."
