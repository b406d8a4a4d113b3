import pytest

from models.errors import ModelsError
from models.layout import ABLATIONS, FeatureLayout, ablation_layouts


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


def _two_by_two():
    """Two modalities × two backbones, each block with its modality's indicator."""
    blocks = {f"{m}/{b}": [f"{m}-{b}-{i}" for i in range(2)]
              for m in ("mammography", "ultrasound") for b in ("resnet50", "vgg16")}
    return FeatureLayout(blocks=blocks, clinical={"age": "numeric", "density": "categorical"},
                         indicators=["missing/mammography", "missing/ultrasound"],
                         block_indicators={b: f"missing/{b.split('/')[0]}" for b in blocks})


def test_subset_keeps_the_blocks_in_layout_order_with_their_own_indicators():
    layout = _two_by_two()
    sub = layout.subset(["ultrasound/vgg16", "mammography/vgg16"], clinical=False)
    assert list(sub.blocks) == ["mammography/vgg16", "ultrasound/vgg16"]
    assert sub.indicators == ["missing/mammography", "missing/ultrasound"]
    assert sub.clinical == {}
    assert sub.columns == ["mammography-vgg16-0", "mammography-vgg16-1", "ultrasound-vgg16-0",
                           "ultrasound-vgg16-1", "missing/mammography", "missing/ultrasound"]


def test_subset_drops_the_indicators_of_blocks_left_out_and_can_keep_clinical():
    sub = _two_by_two().subset(["ultrasound/resnet50"], clinical=True)
    assert sub.indicators == ["missing/ultrasound"]
    assert sub.block_indicators == {"ultrasound/resnet50": "missing/ultrasound"}
    assert sub.clinical == {"age": "numeric", "density": "categorical"}


def test_subset_of_an_unknown_block_is_an_error():
    with pytest.raises(ModelsError, match=r"unknown blocks \['ultrasound/vgg19'\]"):
        _two_by_two().subset(["ultrasound/vgg19"], clinical=False)


def test_ablation_layouts_name_each_modality_backbone_and_the_clinical_split():
    layouts = ablation_layouts(_two_by_two(), ABLATIONS)
    assert list(layouts) == ["modality:mammography", "modality:ultrasound", "backbone:resnet50",
                             "backbone:vgg16", "images_only", "clinical_only"]
    assert list(layouts["backbone:vgg16"].blocks) == ["mammography/vgg16", "ultrasound/vgg16"]
    assert list(layouts["modality:ultrasound"].blocks) == ["ultrasound/resnet50", "ultrasound/vgg16"]
    assert layouts["images_only"].clinical == {} and len(layouts["images_only"].blocks) == 4
    assert layouts["clinical_only"].columns == ["age", "density"]
    assert all(not lay.clinical for name, lay in layouts.items() if name != "clinical_only")


def test_ablations_need_more_than_one_modality_backbone_or_a_clinical_column(design):
    layout = design[3]          # two modalities, one backbone ("cnn"), clinical columns
    assert list(ablation_layouts(layout, ["backbone", "images_only"])) == ["images_only"]
    no_clinical = layout.subset(list(layout.blocks), clinical=False)
    assert list(ablation_layouts(no_clinical, ABLATIONS)) == ["modality:mammo", "modality:us"]


def test_unknown_ablation_kind_is_an_error():
    with pytest.raises(ModelsError, match=r"unknown ablations \['modalities'\]"):
        ablation_layouts(_two_by_two(), ["modalities"])


def test_a_layout_is_frozen_and_clone_deep_copies_it(design):
    from dataclasses import FrozenInstanceError

    from sklearn.base import clone

    from models.fusion import FusionTransformer

    layout = design[3]
    with pytest.raises(FrozenInstanceError):
        layout.blocks = {}
    copy = clone(FusionTransformer(layout)).layout
    assert copy == layout and copy is not layout and copy.blocks is not layout.blocks
