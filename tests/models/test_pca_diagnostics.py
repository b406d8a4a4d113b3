import numpy as np

from models.diagnostics import pca_diagnostics


def test_each_block_is_measured_on_the_training_rows_that_have_it(design):
    X, y, g, layout = design
    train = np.arange(len(X)) < 90
    out = pca_diagnostics(X, layout, train)
    assert set(out) == {"mammo/cnn", "us/cnn"}
    assert out["mammo/cnn"]["n_train_rows"] == 90 and out["mammo/cnn"]["n_features"] == 30
    assert out["us/cnn"]["n_train_rows"] == int((train & (X["missing/us"] == 0)).sum())


def test_ratios_account_for_all_variance_and_components_grow_with_the_share(design):
    X, y, g, layout = design
    us = pca_diagnostics(X, layout, np.ones(len(X), bool))["us/cnn"]
    assert len(us["ratio"]) == 20 and abs(sum(us["ratio"]) - 1) < 1e-4
    needed = [us["components_for"][f] for f in ("0.8", "0.9", "0.95", "0.99")]
    assert needed == sorted(needed) and 1 <= needed[0] and needed[-1] <= 20


def test_a_block_with_fewer_than_three_training_rows_is_left_out(design):
    X, y, g, layout = design
    train = X["missing/us"].to_numpy() == 1              # every case without ultrasound...
    train[np.flatnonzero(~train)[:2]] = True             # ...and two with it
    assert list(pca_diagnostics(X, layout, train)) == ["mammo/cnn"]


def test_the_dict_form_of_the_layout_gives_the_same_figures(design):
    X, y, g, layout = design
    train = np.arange(len(X)) < 90
    assert pca_diagnostics(X, layout.to_dict(), train) == pca_diagnostics(X, layout, train)
