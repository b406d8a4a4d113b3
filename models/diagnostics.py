"""Diagnostics of a design that feed the report, not any model: how many principal components each
block needs for a given share of its variance.
"""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .fusion import missing_rows
from .layout import FeatureLayout

VARIANCE_SHARES = (0.8, 0.9, 0.95, 0.99)


def pca_diagnostics(frame, layout, train_mask) -> dict:
    """Explained variance per block, on the training rows that have the modality.

    A full PCA of each standardised block; the models fit their own PCA per fold, so this only
    reports what ``pca_components`` would keep. Blocks with fewer than 3 such rows are left out.
    BLAS stays single-threaded: threaded OpenBLAS measured up to 100x slower for these small SVDs
    on a busy machine.
    """
    layout = FeatureLayout.coerce(layout)
    train_mask = np.asarray(train_mask, dtype=bool)
    missing = missing_rows(frame, layout)
    out = {}
    with threadpool_limits(limits=1):
        for block, cols in layout.blocks.items():
            x = frame.loc[train_mask & ~missing[block], cols].to_numpy()
            if len(x) < 3:
                continue
            ratio = PCA(random_state=0).fit(StandardScaler().fit_transform(x)).explained_variance_ratio_
            cum = np.cumsum(ratio)
            out[block] = {"n_features": len(cols), "n_train_rows": int(len(x)),
                          "ratio": ratio[:50].round(6).tolist(),
                          "components_for": {str(f): int(np.searchsorted(cum, f) + 1)
                                             for f in VARIANCE_SHARES}}
    return out
