"""Study-file validation: every problem named by its key, all at once; flags override the file."""

import pytest
import yaml

from pipeline.config import apply_overrides, load_study, parse_override, validate
from pipeline.errors import ConfigError

BASE = {"manifest": "m.csv", "modalities": {"ultrasound": {}}}


def _errors(raw, tmp_path):
    with pytest.raises(ConfigError) as info:
        validate(raw, tmp_path)
    return info.value.problems


def test_defaults_are_filled_and_paths_resolved_against_the_study_file(tmp_path):
    study = validate(dict(BASE), tmp_path)
    assert study.extract.batch_size == 16
    assert [b.name for b in study.backbones] == ["resnet50", "vgg16", "efficientnetb0", "handcrafted"]
    assert study.manifest_path == (tmp_path / "m.csv").resolve()
    assert study.run_dir == (tmp_path / "run").resolve()
    assert study.modalities["ultrasound"].preprocess.kind == "ultrasound"
    assert study.modalities["ultrasound"].path_column == "ultrasound_path"


def test_unknown_key_is_an_error_with_a_suggestion(tmp_path):
    problems = _errors({**BASE, "extract": {"bach_size": 8}}, tmp_path)
    assert problems == ["extract.bach_size: unknown key; did you mean 'batch_size'?"]


def test_every_problem_is_listed_at_once_naming_the_key(tmp_path):
    raw = {"manifest": "m.csv", "seedd": 1, "extract": {"batch_size": 0, "workers": "two"},
           "clinical": {"age": "number"},
           "modalities": {"mammography": {"preprocessing": {"clahe_clip": -1, "sharpen": True}}}}
    text = "\n".join(_errors(raw, tmp_path))
    assert "seedd: unknown key; did you mean 'seed'?" in text
    assert "extract.batch_size: expected a positive integer, got 0" in text
    assert "extract.workers: expected a positive integer, got 'two'" in text
    assert "clinical.age: expected one of numeric, ordinal, categorical, got 'number'" in text
    assert "modalities.mammography.preprocessing.sharpen: unknown key" in text
    assert "modalities.mammography.preprocessing.clahe_clip: must be > 0, got -1" in text


def test_missing_manifest_and_modalities_are_reported(tmp_path):
    text = "\n".join(_errors({}, tmp_path))
    assert "manifest: required" in text
    assert "modalities: expected a mapping" in text


def test_roi_crop_without_a_mask_column_is_impossible(tmp_path):
    raw = {**BASE, "modalities": {"ultrasound": {"preprocessing": {"roi_crop": True}}}}
    assert any("roi_crop: needs modalities.ultrasound.mask_column" in p for p in _errors(raw, tmp_path))


def test_backbone_entries_accept_names_and_mappings(tmp_path):
    raw = {**BASE, "extract": {"backbones": ["ResNet50", {"name": "vgg16", "input_size": 64,
                                                          "weights": "random"}],
                               "weights": "imagenet"}}
    study = validate(raw, tmp_path)
    assert [(b.name, b.weights, b.input_size) for b in study.backbones] == [
        ("resnet50", "imagenet", None), ("vgg16", "random", 64)]


def test_duplicate_backbone_and_tiny_input_size_are_errors(tmp_path):
    raw = {**BASE, "extract": {"backbones": ["vgg16", "VGG16"], "input_size": 8}}
    text = "\n".join(_errors(raw, tmp_path))
    assert "backbone 'VGG16' is listed twice" in text
    assert "extract.input_size: expected null or an integer >= 32, got 8" in text


def test_command_line_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**BASE, "extract": {"batch_size": 16}}))
    study = load_study(path, [parse_override("extract.batch_size=4"), parse_override("seed=7")])
    assert study.extract.batch_size == 4 and study.seed == 7


def test_override_needs_key_equals_value():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("extract.batch_size")
    assert apply_overrides({"a": 1}, [(["b", "c"], 2)]) == {"a": 1, "b": {"c": 2}}


def test_missing_or_invalid_yaml_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="Study file not found"):
        load_study(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("extract: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study(bad)


def test_recorded_flags_reproduce_the_effective_config(tmp_path):
    from study_factory import make_study

    study = make_study(tmp_path, n=2, backbones=("handcrafted", "vgg16"))
    from_file = load_study(study)
    used = load_study(study, [(["output"], str(tmp_path / "elsewhere")), (["extract", "weights"], "imagenet"),
                              (["fit", "learners"], ["lr", "rf"]), (["seed"], 7)])
    flags = used.flags
    assert sorted(f.split("=")[0] for f in flags) == ["extract.weights", "fit.learners", "output", "seed"]
    raw = yaml.safe_load(study.read_text())
    again = validate(apply_overrides(raw, [parse_override(f) for f in flags]), tmp_path)
    assert again.to_dict() == used.to_dict() and again.run_dir == used.run_dir
    assert from_file.flags == ()


def test_backbones_and_weights_are_checked_against_the_registries_at_load(tmp_path):
    raw = {**BASE, "extract": {"backbones": ["Resnet5O", "mobilenetv2", {"name": "handcrafted", "weights": "random"}],
                               "weights": str(tmp_path / "no-such-weights")}}
    text = "\n".join(_errors(raw, tmp_path))
    assert "extract.backbones[0]: Unknown backbone 'Resnet5O'; did you mean 'resnet50'?" in text
    assert "backbones[1]" not in text                       # any keras.applications name, without TensorFlow
    assert "extract.backbones[2]: Backbone 'handcrafted' takes no weights" in text
    assert "extract.weights: " in text and "no-such-weights is neither" in text


def test_a_moved_key_says_where_it_went(tmp_path):
    problems = _errors({**BASE, "report": {"occlusion_grid": 3}}, tmp_path)
    assert problems == ["report.occlusion_grid: this key moved to 'explain.grid'"]


def test_a_study_reads_back_from_its_resolved_form(tmp_path):
    raw = {**BASE, "extract": {"backbones": ["vgg16", {"name": "handcrafted", "input_size": 64}], "weights": "random"},
           "fit": {"learners": ["lr"], "params": {"lr": {"C": 0.5}}}}
    study = validate(raw, tmp_path)
    again = validate(study.to_dict(), tmp_path)
    assert again == study and again.to_dict() == study.to_dict()
    assert study.fit.learners == ["lr"] and validate(dict(BASE), tmp_path).fit.learners[:2] == ["knn", "svm"]


def test_every_bad_preprocessing_field_of_a_modality_is_reported_at_once(tmp_path):
    prep = {"clahe_clip": -1, "denoise_ksize": 4, "resize_mode": "crop", "clahe": "yes"}
    problems = _errors({**BASE, "modalities": {"ultrasound": {"preprocessing": prep}}}, tmp_path)
    assert problems == [
        "modalities.ultrasound.preprocessing.resize_mode: must be one of ['pad', 'stretch'], got 'crop'",
        "modalities.ultrasound.preprocessing.clahe: must be true or false, got 'yes'",
        "modalities.ultrasound.preprocessing.denoise_ksize: must be an odd integer >= 3, got 4",
        "modalities.ultrasound.preprocessing.clahe_clip: must be > 0, got -1"]


def test_label_and_patient_id_normalise_are_booleans_kept_in_the_resolved_study(tmp_path):
    study = validate({**BASE, "label": {"normalise": True}, "patient_id_normalise": True}, tmp_path)
    assert study.label.normalise and study.patient_id_normalise
    again = validate(study.to_dict(), tmp_path)
    assert again.label.normalise and again.patient_id_normalise
    assert "patient_id_normalise" in study.config_of(("patient_id_normalise",))
    problems = _errors({**BASE, "label": {"normalise": "yes"}, "patient_id_normalise": 1}, tmp_path)
    assert problems == ["patient_id_normalise: expected true or false, got 1",
                        "label.normalise: expected true or false, got 'yes'"]


def test_a_held_out_share_the_split_refuses_is_refused_at_load(tmp_path):
    assert _errors({**BASE, "fuse": {"test_size": 0.6}}, tmp_path) == [
        "fuse.test_size: expected a fraction in (0, 0.5], got 0.6"]
