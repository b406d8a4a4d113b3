"""Grouped, model-agnostic Shapley values: each block or clinical variable is one player.

A coalition's value for a case is the model output with the absent groups' columns taken from each
background row, averaged over the background (interventional SHAP). With few players every
coalition is enumerated (exact); with more, antithetic permutations are sampled. Either way the
attributions of a case sum exactly to f(x) - E_background[f].
"""
from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np

MAX_EXACT = 10
MAX_ROWS = 2048         # rows per model call, to bound memory with wide embedding blocks


def _values(predict, x, background, groups, coalitions):
    """Mean model output over the background for each coalition (rows: coalitions)."""
    n_bg = len(background)
    per_call = max(1, MAX_ROWS // n_bg)
    means = []
    for start in range(0, len(coalitions), per_call):
        rows = []
        for coalition in coalitions[start:start + per_call]:
            block = background.copy()
            for g in coalition:
                block[:, groups[g]] = x[groups[g]]
            rows.append(block)
        out = np.asarray(predict(np.vstack(rows)), float)
        means.append(out.reshape(len(rows), n_bg, -1).mean(axis=1))
    return np.vstack(means)


def _exact(predict, x, background, groups):
    k = len(groups)
    coalitions = [c for size in range(k + 1) for c in combinations(range(k), size)]
    values = _values(predict, x, background, groups, coalitions)
    lookup = {c: v for c, v in zip(coalitions, values)}
    phi = np.zeros((k, values.shape[1]))
    for c, v in lookup.items():
        s = len(c)
        for i in range(k):
            if i in c:
                continue
            weight = factorial(s) * factorial(k - s - 1) / factorial(k)
            phi[i] += weight * (lookup[tuple(sorted(c + (i,)))] - v)
    return phi, lookup[()]


def _permutations(predict, x, background, groups, n_permutations, rng):
    k = len(groups)
    orders = []
    for _ in range(max(1, n_permutations // 2)):
        order = rng.permutation(k)
        orders += [order, order[::-1]]          # antithetic pairs lower the variance
    coalitions = [tuple(sorted(order[:j])) for order in orders for j in range(k + 1)]
    values = _values(predict, x, background, groups, coalitions).reshape(len(orders), k + 1, -1)
    phi = np.zeros((k, values.shape[2]))
    for o, order in enumerate(orders):
        phi[order] += np.diff(values[o], axis=0)
    return phi / len(orders), values[0, 0]


def grouped_shapley(predict, X, background, groups, n_permutations=16, random_state=0):
    """Shapley values of column groups.

    predict: rows (2-D float array; encode categories as codes) -> outputs (n, n_outputs); X: cases to explain (n, p);
    background: reference rows (m, p); groups: list of column-index lists, one per player.
    Returns (phi of shape (n, players, outputs), base (outputs,), fx (n, outputs), method).
    """
    X = np.asarray(X, dtype=float)
    background = np.asarray(background, dtype=float)
    groups = [np.asarray(g, int) for g in groups]
    rng = np.random.default_rng(random_state)
    exact = len(groups) <= MAX_EXACT
    phis, base = [], None
    for x in X:
        if exact:
            phi, base = _exact(predict, x, background, groups)
        else:
            phi, base = _permutations(predict, x, background, groups, n_permutations, rng)
        phis.append(phi)
    fx = np.asarray(predict(X), float)
    method = "exact" if exact else f"{2 * max(1, n_permutations // 2)} antithetic permutations"
    return np.stack(phis), np.asarray(base), fx, method


def waterfall_steps(base, attributions, names, max_rows=12):
    """One case's attributions as a waterfall, bottom to top: from E[f] through each group (smallest
    |attribution| first, so the largest sits next to f(x)) to f(x). Beyond ``max_rows`` the smallest
    are merged into one "N other groups" step. Returns [{"label", "value", "start", "end"}]."""
    values = np.asarray(attributions, float)
    order = list(np.argsort(-np.abs(values), kind="mergesort"))
    rows = [(str(names[i]), float(values[i])) for i in order]
    if len(rows) > max_rows:
        rest = rows[max_rows - 1:]
        rows = rows[:max_rows - 1] + [(f"{len(rest)} other groups", sum(v for _, v in rest))]
    steps, level = [], float(base)
    for label, value in reversed(rows):
        steps.append({"label": label, "value": value, "start": level, "end": level + value})
        level += value
    return steps
