"""Column hygiene: boxes, identifier-like and constant columns, on hand-made values."""

import numpy as np
import pandas as pd
import pytest

from features.columns import MANY_LEVELS, all_numbers, column_issue, is_box


@pytest.mark.parametrize("form", ["[{},{},103,79]", "{}, {}, 103, 79", "({}, {}, 10.5, 7)", " [ {} ,{},1,2 ] "])
def test_four_comma_separated_numbers_in_every_row_are_a_box(form):
    values = [form.format(i, 2 * i) for i in range(30)] + [""]
    assert is_box(values)
    assert column_issue(values)[0] == "box"


@pytest.mark.parametrize("values", [["[1,2,3]"] * 6, ["[1,2,3,4]", "left"], ["[1,2,3,4)"], ["1;2;3;4"], ["", ""]])
def test_other_values_are_not_boxes(values):
    assert not is_box(values)


def test_one_distinct_value_per_row_is_identifier_like_and_names_the_counts():
    kind, reason = column_issue([f"L{i:04d}" for i in range(12)] + ["", np.nan])
    assert kind == "identifier"
    assert "12 distinct values in 12 rows" in reason


def test_many_levels_mostly_distinct_is_identifier_like():
    values = [f"v{i}" for i in range(MANY_LEVELS + 1)] * 1 + ["v0"] * 20
    assert column_issue(values)[0] == "identifier"


def test_a_real_category_and_few_values_are_not_identifier_like():
    assert column_issue(["yes", "no", "no", "yes", "", "no"]) is None
    assert column_issue(["a", "b", "c", "d"]) is None      # too few values to judge
    assert column_issue([f"v{i % 40}" for i in range(100)]) is None


def test_numeric_columns_are_never_identifier_like():
    assert column_issue(pd.Series(np.arange(100.0)), "numeric") is None


@pytest.mark.parametrize("kind", ["numeric", "ordinal", "categorical"])
def test_one_value_or_none_is_constant(kind):
    assert column_issue(pd.Series([1.0, np.nan, 1.0]), kind) == ("constant", "constant: every row with a value holds '1.0'")
    assert column_issue(pd.Series([np.nan, np.nan]), kind)[1] == "constant: no row has a value"


def test_all_numbers_ignores_empty_cells():
    assert all_numbers(["1", "", "2.5"]) and not all_numbers(["1", "x"]) and not all_numbers(["", ""])
