import pytest

from models.errors import ModelsError
from models.layout import FeatureLayout


def test_layout_round_trips_through_its_dict_form(design):
    layout = design[3]
    again = FeatureLayout.from_dict(layout.to_dict())
    assert again == layout
    assert again.columns == layout.columns


def test_columns_are_blocks_then_clinical_then_indicators():
    layout = FeatureLayout(blocks={"b": ["x", "y"]}, clinical={"age": "numeric"}, indicators=["i"])
    assert layout.columns == ["x", "y", "age", "i"]


def test_unknown_clinical_kind_is_rejected():
    with pytest.raises(ModelsError, match="numeric"):
        FeatureLayout(blocks={"b": ["x"]}, clinical={"age": "continuous"})


def test_column_listed_twice_is_rejected():
    with pytest.raises(ModelsError, match="twice"):
        FeatureLayout(blocks={"a": ["x"], "b": ["x"]})


def test_block_indicator_must_name_a_known_indicator():
    with pytest.raises(ModelsError, match="unknown indicators"):
        FeatureLayout(blocks={"b": ["x"]}, indicators=["i"], block_indicators={"b": "j"})


def test_unknown_layout_key_is_rejected():
    with pytest.raises(ModelsError, match="unknown layout keys"):
        FeatureLayout.from_dict({"blocks": {"b": ["x"]}, "colour": "red"})
