"""Bad images and masks never pass silently: too small, blank, a mask of another size or an empty one
are errors listing every such file (or, where the study says so, counted warnings)."""

import shutil

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.config import load_study, parse_override
from pipeline.errors import ManifestError
from study_factory import make_study, run

BUSI = "busi/images/benign/benign_001.png", "busi/masks/benign/benign_001_mask.png"


def _with_masks(tmp_path, shared_data, n=6):
    """A tiny ultrasound study whose first rows carry a real BUSI image and its own mask."""
    path = make_study(tmp_path, n=n, backbones=("handcrafted",),
                      extra={"modalities": {"ultrasound": {"path_column": "ultrasound_path",
                                                           "mask_column": "mask_path"}}})
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    for i in range(2):
        shutil.copy(shared_data / BUSI[0], tmp_path / f"images/ultrasound/c00{i}.png")
        shutil.copy(shared_data / BUSI[1], tmp_path / f"m{i}.png")
    frame["mask_path"] = ["m0.png", "m1.png"] + [""] * (n - 2)
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    return path


def _extract(path, *overrides):
    study = load_study(path, [parse_override(o) for o in overrides])
    return run(study, "extract")["extract"]


def test_a_tiny_and_a_blank_image_are_both_listed_with_their_lines(tmp_path):
    path = make_study(tmp_path, n=6, backbones=("handcrafted",))
    cv2.imwrite(str(tmp_path / "images/ultrasound/c001.png"), np.full((1, 1), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "images/ultrasound/c004.png"), np.zeros((64, 64), np.uint8))
    with pytest.raises(ManifestError) as info:
        _extract(path)
    problems = info.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("line 3, ultrasound:") and "image is 1x1 px, smaller than 32 px" in problems[0]
    assert problems[1].startswith("line 6, ultrasound:") and "image is blank (every pixel about 0)" in problems[1]
    assert "extract.allow_blank: true" in problems[1]
    outcome = _extract(path, "extract.allow_blank=true", "extract.input_size=32")
    assert len(outcome.summary["notes"]) == 2 and "line 6" in outcome.summary["notes"][1]


def test_a_mask_of_another_size_is_an_error_when_cropping_and_a_note_otherwise(tmp_path, shared_data):
    path = _with_masks(tmp_path, shared_data)
    small = cv2.imread(str(tmp_path / "m1.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(tmp_path / "m1.png"), cv2.resize(small, (100, 80), interpolation=cv2.INTER_NEAREST))
    with pytest.raises(ManifestError) as info:
        _extract(path, "modalities.ultrasound.preprocessing.roi_crop=true")
    (problem,) = info.value.problems
    assert problem.startswith("line 3, ultrasound:") and "its mask m1.png is 100x80 px, the image 512x429 px" in problem
    outcome = _extract(path)
    (note,) = outcome.summary["notes"]
    assert note.startswith("line 3, ultrasound:") and "100x80 px" in note


def test_an_empty_mask_is_an_error_when_cropping_and_counted_otherwise(tmp_path, shared_data):
    path = _with_masks(tmp_path, shared_data)
    blank = np.zeros_like(cv2.imread(str(tmp_path / "m0.png"), cv2.IMREAD_GRAYSCALE))
    cv2.imwrite(str(tmp_path / "m0.png"), blank)
    with pytest.raises(ManifestError, match=r"line 2, ultrasound: .*its mask m0.png is empty"):
        _extract(path, "modalities.ultrasound.preprocessing.roi_crop=true")
    outcome = _extract(path)
    assert [n.split(":")[0] for n in outcome.summary["notes"]] == ["line 2, ultrasound"]
