"""Manifest checks run before any work and list every problem with its line and column."""

import pandas as pd
import pytest

from study_factory import make_study, write_image
from pipeline.config import load_study
from pipeline.errors import ManifestError
from pipeline.manifest import load_manifest


def _load(study_file):
    return load_manifest(load_study(study_file))


def _problems(study_file):
    with pytest.raises(ManifestError) as info:
        _load(study_file)
    return info.value.problems


def test_a_good_manifest_loads_with_numeric_clinical_columns_parsed(tmp_path):
    manifest = _load(make_study(tmp_path, n=6))
    assert len(manifest.frame) == 6
    assert manifest.frame["age"].dtype.kind == "f"
    assert len(manifest.image_rows("ultrasound_path")) == 6


def test_missing_columns_are_all_named(tmp_path):
    study = make_study(tmp_path, n=4)
    frame = pd.read_csv(tmp_path / "manifest.csv").drop(columns=["label", "age"])
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(ManifestError) as info:
        _load(study)
    assert "lacks required column(s): label, age" in str(info.value)


def test_every_row_problem_is_listed_at_once_with_line_and_column(tmp_path):
    study = make_study(tmp_path, n=8)
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame.loc[1, "case_id"] = frame.loc[0, "case_id"]           # duplicate id (lines 2 and 3)
    frame.loc[2, "ultrasound_path"] = "images/nowhere.png"      # missing file (line 4)
    (tmp_path / "garbage.png").write_bytes(b"this is not an image")
    frame.loc[3, "ultrasound_path"] = "garbage.png"             # unreadable file (line 5)
    frame.loc[4, "age"] = "forty"                               # non-numeric clinical (line 6)
    frame.loc[5, "label"] = ""                                  # empty label (line 7)
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    problems = _problems(study)
    text = "\n".join(problems)
    assert "column 'case_id': 'c000' appears more than once (lines 2, 3)" in text
    assert "line 4, column 'ultrasound_path': images/nowhere.png: file not found" in text
    assert "line 5, column 'ultrasound_path': garbage.png:" in text
    assert "line 6, column 'age': 'forty' is not a number" in text
    assert "line 7, column 'label': empty label" in text
    assert len(problems) == 5


def test_fewer_than_two_classes_is_an_error(tmp_path):
    study = make_study(tmp_path, n=4)
    frame = pd.read_csv(tmp_path / "manifest.csv")
    frame["label"] = "benign"
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    assert any("at least two classes are needed, found only 'benign'" in p for p in _problems(study))


def test_missing_patient_column_defaults_to_case_id_and_empty_paths_mean_missing_modality(tmp_path):
    study = make_study(tmp_path, n=4, modalities=("ultrasound", "mammography"))
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame = frame.drop(columns=["patient_id"])
    frame.loc[0, "mammography_path"] = ""
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    manifest = _load(study)
    assert list(manifest.frame["patient_id"]) == list(manifest.frame["case_id"])
    assert len(manifest.image_rows("mammography_path")) == 3


def test_a_manifest_that_is_not_csv_is_a_clear_error(tmp_path):
    study = make_study(tmp_path, n=2)
    (tmp_path / "manifest.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(ManifestError, match="not a readable CSV"):
        _load(study)


def test_masks_are_checked_too(tmp_path):
    study = make_study(tmp_path, n=3, extra={"modalities": {"ultrasound": {"mask_column": "mask_path"}}})
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    write_image(tmp_path / "m0.png", seed=1)
    frame["mask_path"] = ["m0.png", "", "missing_mask.png"]
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    assert _problems(study) == ["line 4, column 'mask_path': missing_mask.png: file not found"]
