"""The fitted front of every learner: per-block PCA, clinical encoding, and the one-hot step.

``FusionTransformer`` turns the design frame (blocks + clinical + indicators) into one float array,
fitted on training rows only because it lives inside the per-fold imblearn Pipeline.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from .errors import ModelsError
from .layout import FeatureLayout

log = logging.getLogger(__name__)


def _examples(index, mask, k=5) -> str:
    rows = list(index[np.asarray(mask)][:k])
    more = int(np.sum(mask)) - len(rows)
    return f"{rows}{f' and {more} more' if more > 0 else ''}"


def _as_frame(X, layout: FeatureLayout) -> pd.DataFrame:
    """Columns by name from a frame; an array is read in layout column order."""
    cols = layout.columns
    if isinstance(X, pd.DataFrame):
        absent = [c for c in cols if c not in X.columns]
        if absent:
            raise ModelsError(f"design frame lacks {len(absent)} layout columns, e.g. {absent[:5]}")
        return X[cols]
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != len(cols):
        raise ModelsError(
            f"expected a design frame or a 2D array with {len(cols)} columns in layout order, "
            f"got an array of shape {X.shape}")
    return pd.DataFrame(X, columns=cols)


def _numeric(frame: pd.DataFrame, cols, what: str) -> np.ndarray:
    sub = frame[cols]
    if sub.select_dtypes(exclude="number").shape[1] == 0:
        return sub.to_numpy(dtype=float)
    try:
        return sub.apply(pd.to_numeric).to_numpy(dtype=float)
    except (ValueError, TypeError) as err:
        raise ModelsError(f"{what} columns must be numeric: {err}") from None


def missing_rows(frame: pd.DataFrame, layout: FeatureLayout) -> dict[str, np.ndarray]:
    """Per block, the rows where the modality is missing; raises on Inf or a broken NaN pattern.

    NaN is legitimate only as a whole missing block (and, where the layout names the block's
    indicator, exactly where that indicator is 1); anything else is a broken embedding.
    """
    indicators = {}
    for ind in layout.indicators:
        v = _numeric(frame, [ind], "indicator")[:, 0]
        bad = ~np.isin(v, (0.0, 1.0))
        if bad.any():
            raise ModelsError(f"indicator '{ind}' must be 0 or 1; {bad.sum()} rows are not, "
                              f"e.g. {_examples(frame.index, bad)}")
        indicators[ind] = v == 1
    out = {}
    for block, cols in layout.blocks.items():
        v = _numeric(frame, cols, f"block '{block}'")
        inf = np.isinf(v)
        if inf.any():
            raise ModelsError(
                f"block '{block}' has {inf.sum()} infinite values in {inf.any(1).sum()} rows, "
                f"e.g. {_examples(frame.index, inf.any(1))}; embeddings must be finite")
        nan = np.isnan(v)
        whole = nan.all(1)
        partial = nan.any(1) & ~whole
        if partial.any():
            raise ModelsError(
                f"block '{block}' has {nan[partial].sum()} NaN values in {partial.sum()} rows that "
                f"are otherwise present, e.g. {_examples(frame.index, partial)}; a missing "
                "modality must be NaN across the whole block, any other NaN is a broken embedding")
        ind = layout.block_indicators.get(block)
        if ind is not None:
            clash = whole != indicators[ind]
            if clash.any():
                raise ModelsError(
                    f"block '{block}' disagrees with its indicator '{ind}' in {clash.sum()} rows, "
                    f"e.g. {_examples(frame.index, clash)}; NaN rows must be exactly those "
                    "flagged missing")
        out[block] = whole
    return out


def _pca_size(requested, n_samples: int, n_features: int):
    """An int is clipped to what the data allow; a fraction is passed on to PCA."""
    if isinstance(requested, (float, np.floating)) and 0 < requested < 1:
        return float(requested)
    if isinstance(requested, (int, np.integer)) and requested >= 1:
        return int(max(1, min(requested, n_samples - 1, n_features)))
    raise ModelsError("pca_components must be a positive int, a float in (0, 1), or None; "
                      f"got {requested!r}")


class FusionTransformer(TransformerMixin, BaseEstimator):
    """Design frame → floats: [block PCs | numeric+ordinal clinical | indicators | cat codes].

    Each block is standardised and reduced by its own PCA fitted on the training rows that have
    the modality; rows missing it get the training mean, i.e. zero scores (the indicator says
    why). Categorical columns come last as integer codes so SMOTENC can treat them as categories;
    ``CategoricalOneHot`` expands them after the sampler. ``layout`` is a ``FeatureLayout`` (its
    dict form is accepted too, as older saved models hold it).
    """

    def __init__(self, layout=None, pca_components=None, random_state=None):
        self.layout = layout
        self.pca_components = pca_components
        self.random_state = random_state

    def fit(self, X, y=None):
        layout = FeatureLayout.coerce(self.layout)
        frame = _as_frame(X, layout)
        missing = missing_rows(frame, layout)
        self.layout_ = layout
        self.n_features_in_ = len(layout.columns)
        self.block_scalers_, self.block_pcas_ = {}, {}
        self.explained_variance_ratio_, self.explained_variance_ = {}, {}
        for block, cols in layout.blocks.items():
            observed = frame.loc[~missing[block], cols].to_numpy(dtype=float)
            if len(observed) < 2:
                raise ModelsError(
                    f"block '{block}' is present in only {len(observed)} training rows; "
                    "at least 2 are needed to scale it")
            scaler = StandardScaler().fit(observed)
            pca = None
            if self.pca_components is not None:
                n = _pca_size(self.pca_components, *observed.shape)
                solver = "full" if isinstance(n, float) else "auto"
                pca = PCA(n_components=n, svd_solver=solver, random_state=self.random_state)
                pca.fit(scaler.transform(observed))
                self.explained_variance_ratio_[block] = pca.explained_variance_ratio_
            else:
                self.explained_variance_ratio_[block] = None
            self.explained_variance_[block] = (
                1.0 if pca is None else float(pca.explained_variance_ratio_.sum()))
            self.block_scalers_[block], self.block_pcas_[block] = scaler, pca

        numeric = layout.clinical_of("numeric", "ordinal")
        self.numeric_ = None
        if numeric:
            values = _numeric(frame, numeric, "numeric/ordinal clinical")
            if np.isinf(values).any():
                raise ModelsError("numeric/ordinal clinical columns contain infinite values")
            self.numeric_ = make_pipeline(
                SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
            self.numeric_.fit(values)

        self.categories_, self.most_frequent_ = {}, {}
        for col in layout.clinical_of("categorical"):
            seen = frame[col].dropna().astype(str)
            if seen.empty:
                raise ModelsError(f"categorical column '{col}' has no values in the training rows")
            counts = seen.value_counts()
            self.categories_[col] = np.array(sorted(counts.index))
            # ties broken by name so the same data always give the same fill
            self.most_frequent_[col] = sorted(counts.index, key=lambda c: (-counts[c], c))[0]

        n_cat = len(self.categories_)
        self.n_features_out_ = len(self.get_feature_names_out())
        self.categorical_indices_ = list(range(self.n_features_out_ - n_cat, self.n_features_out_))
        return self

    def transform(self, X):
        check_is_fitted(self, "block_scalers_")
        layout = self.layout_
        frame = _as_frame(X, layout)
        missing = missing_rows(frame, layout)
        parts = []
        for block, cols in layout.blocks.items():
            scaler, pca = self.block_scalers_[block], self.block_pcas_[block]
            width = scaler.n_features_in_ if pca is None else pca.n_components_
            out = np.zeros((len(frame), width))
            present = ~missing[block]
            if present.any():
                z = scaler.transform(frame.loc[present, cols].to_numpy(dtype=float))
                out[present] = z if pca is None else pca.transform(z)
            parts.append(out)
        if self.numeric_ is not None:
            values = _numeric(frame, layout.clinical_of("numeric", "ordinal"), "clinical")
            parts.append(self.numeric_.transform(values))
        if layout.indicators:
            parts.append(_numeric(frame, layout.indicators, "indicator"))
        for col, cats in self.categories_.items():
            parts.append(self._codes(frame[col], col, cats)[:, None])
        return np.hstack(parts) if parts else np.empty((len(frame), 0))

    def _codes(self, values: pd.Series, col: str, cats: np.ndarray) -> np.ndarray:
        """Unknown categories (and NaN) become the training fold's most frequent category."""
        na = values.isna().to_numpy()
        text = values.astype(str).to_numpy()
        known = np.isin(text, cats) | na
        if not known.all():
            log.warning("categorical column '%s': %d rows with categories unseen in training "
                        "(%s) encoded as the most frequent, '%s'", col, (~known).sum(),
                        sorted(set(text[~known]))[:5], self.most_frequent_[col])
        text = np.where(na | ~known, self.most_frequent_[col], text)
        return np.searchsorted(cats, text).astype(float)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "block_scalers_")
        layout = self.layout_
        names = []
        for block, cols in layout.blocks.items():
            pca = self.block_pcas_[block]
            names += cols if pca is None else [f"{block}:pc{i + 1}"
                                               for i in range(pca.n_components_)]
        names += layout.clinical_of("numeric", "ordinal") + list(layout.indicators)
        names += list(self.categories_)
        return np.asarray(names, dtype=object)


def _trailing_or_given(categorical, n_features: int) -> np.ndarray:
    """An int means that many trailing columns; a list gives indices (negative allowed)."""
    if categorical is None:
        return np.array([], dtype=int)
    if isinstance(categorical, (int, np.integer)):
        if not 0 <= categorical <= n_features:
            raise ModelsError(f"{categorical} categorical columns asked of {n_features} features")
        return np.arange(n_features - categorical, n_features)
    return np.unique(np.arange(n_features)[np.asarray(list(categorical), dtype=int)])


class CategoricalOneHot(TransformerMixin, BaseEstimator):
    """One-hot encodes the categorical code columns (put last), after the sampler.

    Codes suit SMOTENC; estimators need indicators instead, so this sits between them. Output is
    [other columns | one-hot columns]; a category unseen in fit gives all zeros.
    """

    def __init__(self, categorical=0):
        self.categorical = categorical

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        self.n_features_in_ = X.shape[1]
        self.categorical_indices_ = _trailing_or_given(self.categorical, X.shape[1])
        self.categories_ = [np.unique(X[:, j]) for j in self.categorical_indices_]
        return self

    def transform(self, X):
        check_is_fitted(self, "categories_")
        X = np.asarray(X, dtype=float)
        if X.shape[1] != self.n_features_in_:
            raise ModelsError(f"expected {self.n_features_in_} features, got {X.shape[1]}")
        rest = np.delete(X, self.categorical_indices_, axis=1)
        hot = [(X[:, [j]] == cats[None, :]).astype(float)
               for j, cats in zip(self.categorical_indices_, self.categories_)]
        return np.hstack([rest, *hot])

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "categories_")
        if input_features is None:
            input_features = [f"x{i}" for i in range(self.n_features_in_)]
        input_features = np.asarray(input_features, dtype=object)
        rest = np.delete(input_features, self.categorical_indices_)
        hot = [f"{input_features[j]}={c:g}"
               for j, cats in zip(self.categorical_indices_, self.categories_) for c in cats]
        return np.asarray([*rest, *hot], dtype=object)
