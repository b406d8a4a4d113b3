"""Tiny synthetic design frames for the models tests: two embedding blocks, clinical columns.

A uniquely named module (not conftest) so test files can import it unambiguously.
"""
import numpy as np
import pandas as pd

from models.layout import FeatureLayout

# small models so the whole suite stays fast
FAST_PARAMS = {
    "knn": {},
    "svm": {},
    "rf": {"n_estimators": 25},
    "et": {"n_estimators": 25},
    "mlp": {"learning_rate_init": 0.01},
    "lr": {},
    "xgb": {"n_estimators": 25, "max_depth": 2},
}


def make_design(n=120, n_classes=2, seed=0, signal=3.0, missing_us=0.2, minority=0.35):
    """Block "mammo/cnn" (30 cols) carries the signal; "us/cnn" (20 cols) is noise and is missing
    for a fraction of cases (NaN + indicator). Patients own 1–2 cases with the same label."""
    rng = np.random.default_rng(seed)
    n_pat = int(n * 0.7)
    if n_classes == 2:
        pat_y = (rng.random(n_pat) < minority).astype(int)
        pat_y[:2], pat_y[2:4] = 0, 1
    else:
        pat_y = rng.integers(0, n_classes, n_pat)
        pat_y[:n_classes] = np.arange(n_classes)
    patient = np.r_[np.arange(n_pat), rng.integers(0, n_pat, n - n_pat)]
    y = pat_y[patient]
    mammo = rng.normal(size=(n, 30))
    for k in range(1, n_classes):  # class k shifts its own three columns
        mammo[y == k, k * 3:(k + 1) * 3] += signal
    us = rng.normal(size=(n, 20))
    gone = rng.random(n) < missing_us
    us[gone] = np.nan
    frame = pd.DataFrame(np.hstack([mammo, us]),
                         columns=[f"m{i}" for i in range(30)] + [f"u{i}" for i in range(20)])
    frame["age"] = rng.normal(55, 10, n).round()
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    frame["birads"] = rng.integers(1, 6, n)
    frame["density"] = rng.choice(["a", "b", "c", "d"], n)
    frame["missing/us"] = gone.astype(int)
    frame.index = [f"case{i}" for i in range(n)]
    layout = FeatureLayout(
        blocks={"mammo/cnn": [f"m{i}" for i in range(30)], "us/cnn": [f"u{i}" for i in range(20)]},
        clinical={"age": "numeric", "birads": "ordinal", "density": "categorical"},
        indicators=["missing/us"], block_indicators={"us/cnn": "missing/us"})
    labels = np.array(["benign", "malignant", "other"])[y] if n_classes <= 3 else y
    return frame, labels, np.array([f"p{p}" for p in patient]), layout
