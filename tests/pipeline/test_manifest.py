"""Manifest checks run before any work and list every problem with its line and column."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from study_factory import make_study, write_image
from pipeline.config import load_study, parse_override, validate
from pipeline.errors import ManifestError
from pipeline.manifest import effective_labels, load_manifest, read_header

REPO = Path(__file__).resolve().parents[2]


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


# --- label and id hygiene, CSV dialect, split plan (issue 10) ------------------------------------

def _busi_copy(tmp_path, shared_data, relabel, extra=None):
    """A 60-row copy of the BUSI manifest with absolute image paths and some labels rewritten."""
    busi = shared_data / "busi"
    frame = pd.read_csv(busi / "manifest.csv", dtype=str, keep_default_na=False)
    frame = frame.groupby("label", group_keys=False).head(20).reset_index(drop=True)
    frame["ultrasound_path"] = [str(busi / p) for p in frame["ultrasound_path"]]
    for row, label in relabel.items():
        frame.loc[row, "label"] = label
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    study = {"manifest": "manifest.csv", "modalities": {"ultrasound": {"path_column": "ultrasound_path"}},
             "fuse": {"group_column": "dup_group"}, **(extra or {})}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    return tmp_path / "study.yaml"


def test_labels_differing_only_in_case_are_one_error_listing_each_spelling_with_its_lines(tmp_path, shared_data):
    study = _busi_copy(tmp_path, shared_data, {0: "Benign", 5: "BENIGN", 7: "Benign"})
    problems = _problems(study)
    assert problems == ["column 'label': 'Benign' (lines 2, 9), 'benign' (lines 3, 4, 5, 6, 8, 10, … (17 rows)), "
                        "'BENIGN' (line 7) are one label written 3 ways (they differ only in case or spaces): "
                        "write it one way, or set label.normalise: true to read every label in lower case "
                        "('benign')"]


def test_label_normalise_merges_the_spellings_and_says_so_for_surrounding_spaces(tmp_path, shared_data, caplog):
    study = _busi_copy(tmp_path, shared_data, {0: "Benign", 5: "BENIGN", 25: "Malignant ", 45: " NORMAL"},
                       extra={"label": {"normalise": True, "positive": "malignant"}})
    with caplog.at_level("INFO"):
        manifest = _load(study)
    assert sorted(set(manifest.frame["label"])) == ["benign", "malignant", "normal"]
    assert "spaces around 1 value(s) ignored (line 27): 'Malignant ' is read as 'Malignant'" in caplog.text
    assert "label.normalise: 'Benign' (line 2), 'benign'" in caplog.text


def test_positive_map_and_drop_must_name_labels_that_exist(tmp_path):
    study = make_study(tmp_path, n=6, extra={"label": {"positive": "Malignant", "map": {"benin": "b"},
                                                       "drop": ["normal"]}})
    problems = _problems(study)
    assert "label.map: 'benin' is not a label in column 'label'; did you mean 'benign'?" in problems
    assert ("label.drop: 'normal' is not a label in column 'label'; its labels are 'benign', 'malignant'"
            in problems)
    assert any(p.startswith("label.positive is 'Malignant', but column 'label' has only 'benign', 'malignant' "
                            "(after label.map and label.drop); did you mean 'malignant'?") for p in problems)


def _with_patients(study_file, ids):
    path = study_file.parent / "manifest.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[: len(ids) - 1, "patient_id"] = ids
    frame.to_csv(path, index=False)


def test_patient_ids_that_are_one_number_written_differently_are_an_error(tmp_path):
    study = make_study(tmp_path, n=8)
    _with_patients(study, ["1", "1.0", "01", "1", "A7", "007"])
    assert _problems(study) == [
        "column 'patient_id': '1' (lines 2, 5), '1.0' (line 3), '01' (line 4) are the number 1 written 3 ways, "
        "so they would be 3 patients, possibly in different folds: write each patient one way, or set "
        "patient_id_normalise: true to read them as one patient, '1'"]


def test_patient_id_normalise_makes_them_one_patient_kept_in_one_fold(tmp_path):
    from pipeline.stages.fuse import _splits

    study = make_study(tmp_path, n=40, extra={"patient_id_normalise": True,
                                              "fuse": {"n_folds": 3, "test_size": 0.25}})
    _with_patients(study, ["1", "1.0", "01", '1', "1e0", "0001"])
    manifest = _load(study)
    frame = manifest.frame
    assert list(frame["patient_id"][:6]) == ["1"] * 6
    y = frame["label"].to_numpy(dtype=object)
    is_test, folds = _splits(load_study(study), y, frame["patient_id"].to_numpy(dtype=object), None)
    places = {("test" if is_test[i] else int(folds[0, i])) for i in range(6)}
    assert len(places) == 1


def test_ids_are_text_as_written_never_floats(tmp_path):
    study = make_study(tmp_path, n=6)
    _with_patients(study, ["007", "A2", "1e5", "3", "3.5", "x-01"])
    frame = _load(study).frame
    assert list(frame["patient_id"]) == ["007", "A2", "1e5", "3", "3.5", "x-01"]
    assert pd.api.types.is_string_dtype(frame["patient_id"]) and frame["case_id"][0] == "c000"


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_manifests_are_read(tmp_path, sep):
    study = make_study(tmp_path, n=6)
    comma = _load(study).frame
    pd.read_csv(tmp_path / "manifest.csv", dtype=str).to_csv(tmp_path / "manifest.csv", sep=sep, index=False)
    pd.testing.assert_frame_equal(_load(study).frame, comma)
    assert read_header(tmp_path / "manifest.csv") == list(comma.columns)     # what predict checks


def test_a_decimal_comma_in_a_semicolon_manifest_is_named(tmp_path):
    study = make_study(tmp_path, n=4)
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str)
    frame.loc[1, "age"] = "40,5"
    frame.to_csv(tmp_path / "manifest.csv", sep=";", index=False)
    assert any("line 3, column 'age': '40,5' is not a number" in p and "a decimal comma? write '40.5'" in p
               for p in _problems(study))


def test_a_header_read_as_one_column_says_why(tmp_path):
    study = make_study(tmp_path, n=4)
    pd.read_csv(tmp_path / "manifest.csv", dtype=str).to_csv(tmp_path / "manifest.csv", sep="|", index=False)
    with pytest.raises(ManifestError) as info:
        _load(study)
    assert "the header was read as one column, 'case_id|patient_id|label" in str(info.value)
    assert "holds bar characters: separate the manifest's cells by commas, semicolons or tabs" in str(info.value)


def _three_classes(tmp_path, n_normal, fuse=None):
    """20 benign and 20 malignant patients (one case each) and ``n_normal`` normal ones."""
    study = make_study(tmp_path, n=40 + n_normal, extra={"fuse": fuse or {}})
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame["patient_id"] = frame["case_id"]
    frame.loc[40:, "label"] = "normal"
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    return study


_ADVICE = re.compile(r"(fuse\.test_size|fuse\.n_folds|label\.drop|label\.map): (\[[^]]*\]|\{[^}]*\}|[\d.]+)")


def _split_problems(study):
    with pytest.raises(ManifestError) as info:
        load_manifest(study, check_split=True)
    return info.value.problems


def _advice_works(study, problem):
    """Each alternative the problem advises is made of study keys the config accepts, and with it
    the check passes and fuse's own split works; returns the alternatives."""
    from pipeline.stages.fuse import _splits

    alternatives = [_ADVICE.findall(a) for a in problem.split(": ", 1)[1].split(", or ")]
    for settings in alternatives:
        fixed = load_study(study).with_overrides([parse_override(f"{k}={v}") for k, v in settings])
        frame = load_manifest(fixed, check_split=True).frame
        labels = effective_labels(fixed, frame["label"])
        keep = (labels != "").to_numpy()
        _splits(fixed, labels[keep].to_numpy(dtype=object), frame["patient_id"][keep].to_numpy(dtype=object), None)
    return alternatives


def test_a_class_too_small_for_the_held_out_split_is_named_with_settings_that_work(tmp_path):
    problems = _split_problems(load_study(_three_classes(tmp_path, 3)))
    assert problems == [
        "class 'normal' has 3 patient(s); fuse.test_size: 0.2 holds out 1 in 5 patients of every class, which "
        "needs at least 5: set fuse.test_size: 0.34 and fuse.n_folds: 2, or label.drop: [normal], or merge it "
        "into another class with label.map: {normal: malignant}"]
    assert _advice_works(tmp_path / "study.yaml", problems[0]) == [
        [("fuse.test_size", "0.34"), ("fuse.n_folds", "2")], [("label.drop", "[normal]")],
        [("label.map", "{normal: malignant}")]]


def test_a_class_too_small_for_the_folds_is_named_with_the_folds_that_fit(tmp_path):
    problems = _split_problems(load_study(_three_classes(tmp_path, 6)))
    assert problems[0].startswith(
        "class 'normal' has 6 patient(s); the held-out split (fuse.test_size: 0.2) takes up to 2, leaving 4 for "
        "training, and fuse.n_folds: 5 needs at least 5 there: set fuse.n_folds: 4, or label.drop: [normal]")
    _advice_works(tmp_path / "study.yaml", problems[0])


def test_the_split_plan_counts_patients_and_their_groups_after_label_map(tmp_path):
    study = _three_classes(tmp_path, 5, fuse={"n_folds": 3})
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame.loc[40:, "label"] = "Normal"
    frame.loc[40:41, "patient_id"] = "p-n"                   # 5 cases, 4 patients, 1 near-duplicate group
    frame["dup"] = [""] * 40 + ["d1"] * 5
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    assert _split_problems(load_study(study))[0].startswith("class 'Normal' has 4 patient(s); ")
    grouped = load_study(study).with_overrides([(["fuse", "group_column"], "dup")])
    assert _split_problems(grouped)[0].startswith(
        "class 'Normal' has 1 patient group(s) (patients tied by fuse.group_column merged); ")
    merged = grouped.with_overrides([(["label", "map"], {"Normal": "benign"})])
    assert len(load_manifest(merged, check_split=True).frame) == 45


def test_a_binary_class_with_one_case_can_only_be_given_more_cases(tmp_path):
    study = make_study(tmp_path, n=12)
    frame = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    frame["label"] = ["malignant"] + ["benign"] * 11
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    assert _split_problems(load_study(study)) == [
        "class 'benign' has 6 patient(s); the held-out split (fuse.test_size: 0.2) takes up to 2, leaving 4 for "
        "training, and fuse.n_folds: 5 needs at least 5 there: set fuse.n_folds: 4",
        "class 'malignant' has 1 patient(s); fuse.test_size: 0.2 holds out 1 in 5 patients of every class, which "
        "needs at least 5: add cases of class 'malignant' (no fuse.test_size and fuse.n_folds can hold out and "
        "cross-validate fewer than 3 patients)"]
    assert len(_load(study).frame) == 12              # extract alone does not split: it is not refused


def test_a_class_with_one_case_stops_run_before_extract_with_exit_2(tmp_path):
    study = _three_classes(tmp_path, 1)
    out = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), "--no-progress", "run", "-c", str(study)],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "class 'normal' has 1 patient(s)" in out.stderr
    assert "label.drop: [normal], or merge it into another class with label.map: {normal: malignant}" in out.stderr
    assert not (tmp_path / "run").exists()


def test_fuse_own_split_error_gives_advice_the_config_accepts(tmp_path):
    from pipeline.errors import ConfigError
    from pipeline.stages.fuse import _splits

    y = np.array(["a"] * 10 + ["b"], dtype=object)
    with pytest.raises(ConfigError) as info:
        study = validate({"manifest": "m.csv", "modalities": {"us": {}}}, tmp_path)
        _splits(study, y, np.arange(11).astype(str).astype(object), None)
    assert "test_size >= 1" not in str(info.value)
    assert "no test_size can hold out part of a class with one group" in str(info.value)
