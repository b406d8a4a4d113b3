import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (check_get_params_invariance,
                                            check_no_attributes_set_in_init, check_set_params)

from models.errors import ModelsError
from models.fusion import CategoricalOneHot, FusionTransformer


def fitted(design, pca=5):
    X, y, g, layout = design
    return FusionTransformer(layout.to_dict(), pca_components=pca, random_state=0).fit(X), X


def test_output_is_block_pcs_then_clinical_then_indicators_then_categorical_codes(design):
    fuse, X = fitted(design)
    Z = fuse.transform(X)
    names = list(fuse.get_feature_names_out())
    assert Z.dtype == float and Z.shape == (len(X), len(names))
    assert names[:5] == [f"mammo/cnn:pc{i}" for i in range(1, 6)]
    assert names[10:] == ["age", "birads", "missing/us", "density"]
    assert fuse.categorical_indices_ == [len(names) - 1]
    assert set(Z[:, -1]) == {0.0, 1.0, 2.0, 3.0}


def test_explained_variance_is_reported_per_block(design):
    fuse, _ = fitted(design)
    assert set(fuse.explained_variance_) == {"mammo/cnn", "us/cnn"}
    assert all(0 < v <= 1 for v in fuse.explained_variance_.values())
    assert len(fuse.explained_variance_ratio_["us/cnn"]) == 5


def test_pca_fraction_keeps_that_share_of_variance(design):
    fuse, _ = fitted(design, pca=0.6)
    assert all(v >= 0.6 for v in fuse.explained_variance_.values())


def test_pca_components_are_clipped_to_what_the_rows_allow(design):
    X, y, g, layout = design
    fuse = FusionTransformer(layout.to_dict(), pca_components=500).fit(X.iloc[:12])
    assert fuse.block_pcas_["mammo/cnn"].n_components_ == 11


def test_no_pca_keeps_scaled_columns(design):
    fuse, X = fitted(design, pca=None)
    assert fuse.transform(X).shape[1] == 50 + 4
    assert fuse.explained_variance_ == {"mammo/cnn": 1.0, "us/cnn": 1.0}


def test_rows_missing_a_modality_get_zero_scores(design):
    fuse, X = fitted(design)
    Z = fuse.transform(X)
    gone = X["missing/us"].to_numpy() == 1
    assert gone.any()
    np.testing.assert_array_equal(Z[gone, 5:10], 0.0)
    assert np.abs(Z[~gone, 5:10]).sum() > 0


def test_clinical_numeric_is_median_imputed_and_scaled(design):
    fuse, X = fitted(design)
    age = fuse.transform(X)[:, 10]
    assert not np.isnan(age).any()
    assert abs(age[X["age"].notna().to_numpy()].mean()) < 0.2


def test_unknown_and_missing_categories_become_the_most_frequent(design):
    fuse, X = fitted(design)
    new = X.iloc[:3].copy()
    new["density"] = ["zzz", None, "a"]
    codes = fuse.transform(new)[:, -1]
    frequent = list(fuse.categories_["density"]).index(fuse.most_frequent_["density"])
    assert list(codes) == [frequent, frequent, 0.0]


def test_infinite_embedding_is_an_error_naming_block_and_count(design):
    X, y, g, layout = design
    bad = X.copy()
    bad.iloc[[3, 7], 2] = np.inf
    with pytest.raises(ModelsError, match=r"block 'mammo/cnn' has 2 infinite values in 2 rows"):
        FusionTransformer(layout.to_dict()).fit(bad)


def test_nan_inside_a_present_block_is_an_error_naming_rows(design):
    X, y, g, layout = design
    bad = X.copy()
    bad.loc["case5", "m3"] = np.nan
    with pytest.raises(ModelsError, match=r"block 'mammo/cnn' has 1 NaN values in 1 rows.*case5"):
        FusionTransformer(layout.to_dict()).fit(bad)


def test_nan_block_not_flagged_by_its_indicator_is_an_error(design):
    X, y, g, layout = design
    bad = X.copy()
    row = bad.index[bad["missing/us"] == 0][0]
    bad.loc[row, [f"u{i}" for i in range(20)]] = np.nan
    with pytest.raises(ModelsError, match=rf"disagrees with its indicator 'missing/us'.*{row}"):
        FusionTransformer(layout.to_dict()).fit(bad)


def test_transform_checks_new_rows_too(design):
    fuse, X = fitted(design)
    bad = X.iloc[:4].copy()
    bad.iloc[0, 0] = -np.inf
    with pytest.raises(ModelsError, match="infinite"):
        fuse.transform(bad)


def test_missing_layout_column_is_an_error(design):
    X, y, g, layout = design
    with pytest.raises(ModelsError, match="lacks 1 layout columns"):
        FusionTransformer(layout.to_dict()).fit(X.drop(columns="age"))


def test_array_in_layout_order_gives_the_same_result(design):
    fuse, X = fitted(design)
    arr = X[fuse.layout_.columns].to_numpy(dtype=object)
    np.testing.assert_allclose(fuse.transform(arr), fuse.transform(X))


def test_fit_transform_equals_fit_then_transform_and_clone_is_unfitted(design):
    X, y, g, layout = design
    fuse = FusionTransformer(layout.to_dict(), pca_components=5, random_state=0)
    np.testing.assert_allclose(fuse.fit_transform(X), clone(fuse).fit(X).transform(X))
    assert not hasattr(clone(fuse), "block_pcas_")


@pytest.mark.parametrize("form", ["dict", "layout"])
@pytest.mark.parametrize("check", [check_get_params_invariance, check_set_params,
                                   check_no_attributes_set_in_init])
def test_fusion_passes_the_estimator_checks_that_need_no_data(check, form, design):
    layout = design[3].to_dict() if form == "dict" else design[3]
    check("FusionTransformer", FusionTransformer(layout))


def test_one_hot_expands_trailing_codes_and_ignores_unseen():
    X = np.array([[0.5, 0.0], [1.5, 2.0], [2.5, 1.0]])
    hot = CategoricalOneHot(1).fit(X)
    np.testing.assert_array_equal(hot.transform(X)[:, 1:], np.eye(3)[[0, 2, 1]])
    np.testing.assert_array_equal(hot.transform([[0.0, 7.0]]), [[0.0, 0.0, 0.0, 0.0]])
    assert list(hot.get_feature_names_out(["a", "c"])) == ["a", "c=0", "c=1", "c=2"]


def test_one_hot_with_no_categorical_columns_is_identity():
    X = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(CategoricalOneHot(0).fit_transform(X), X)
