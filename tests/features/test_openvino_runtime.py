"""extract.runtime: openvino — embeddings equal TensorFlow's to 1e-5, the converted model kept and read
back, the stage wiring (result-neutral: same cache key), and the message when openvino is missing."""

import sys

import numpy as np
import pytest

from features.backbones import KerasEmbedder, build_embedder, openvino_runtime, resolve_weights
from features.errors import BackboneError
from pipeline.config import load_study, parse_override
from pipeline.errors import ConfigError
from study_factory import catalog, make_study, run



@pytest.fixture
def openvino_installed():
    """make setup installs openvino: its absence is a broken test environment, not a skip."""
    assert openvino_runtime.installed(), "openvino is required for these tests: pip install -r requirements-openvino.txt"


needs_openvino = pytest.mark.usefixtures("openvino_installed")
SIZE = 64


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((72, 60)) * 255).astype(np.uint8) for _ in range(n)]


def _embed(embedder, images):
    return embedder.embed(np.stack([embedder.prepare(g) for g in images]))


def _assert_equal_to_1e5_relative(actual, expected):
    """Within 1e-5 of the reference: each row relative to its norm, each value relative to itself or to
    the largest value (ReLU features hold zeros)."""
    rows = np.linalg.norm(actual - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert rows.max() < 1e-5, rows.max()
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.fixture
def conversions(monkeypatch):
    """Every conversion of a Keras model to OpenVINO, counted."""
    calls = []
    real = openvino_runtime._convert

    def counting(ov, model, input_size):
        calls.append((model.name, input_size))
        return real(ov, model, input_size)
    monkeypatch.setattr(openvino_runtime, "_convert", counting)
    return calls


def _pair(name, size=SIZE):
    """The same seeded model on TensorFlow and on OpenVINO (built once per process)."""
    choice = resolve_weights(name, "random", seed=3)
    return build_embedder(name, choice, size, 4), build_embedder(name, choice, size, 4, runtime="openvino")


@needs_openvino
@pytest.mark.parametrize("name", ["resnet50", "efficientnetb0", "vgg16"])
def test_openvino_embeddings_equal_tensorflow_ones_to_1e5_relative(name):
    on_tf, on_ov = _pair(name)
    images = _images(5)   # two batches of 4, the second padded
    expected, got = _embed(on_tf, images), _embed(on_ov, images)
    assert got.shape == expected.shape and got.dtype == np.float32
    _assert_equal_to_1e5_relative(got, expected)
    assert on_ov.runtime == "openvino" and on_ov.device == "CPU" and on_ov.dim == expected.shape[1]
    assert on_ov.spec == on_tf.spec   # the runtime changes no number worth recording


@needs_openvino
def test_an_openvino_row_does_not_depend_on_its_batch():
    _, on_ov = _pair("efficientnetb0")
    images = _images(5)
    np.testing.assert_array_equal(_embed(on_ov, images[3:4]), _embed(on_ov, images)[3:4])


KEPT = dict(name="efficientnetb0", choice=resolve_weights("efficientnetb0", "random", seed=1), input_size=32,
            batch_size=4, runtime="openvino")


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """A cache folder holding one converted model, and the embeddings of the build that converted it."""
    folder = tmp_path_factory.mktemp("openvino")
    with pytest.MonkeyPatch.context() as mp:
        calls = []
        real = openvino_runtime._convert
        mp.setattr(openvino_runtime, "_convert", lambda *a: calls.append(a) or real(*a))
        first = KerasEmbedder(**KEPT, cache_dir=folder)
    assert len(calls) == 1
    return folder, _embed(first, _images(3))


@needs_openvino
def test_the_converted_model_is_kept_and_the_next_build_reads_it_without_converting(kept, conversions):
    folder, expected = kept
    (xml,) = folder.glob("*/model.xml")
    assert xml.with_suffix(".bin").is_file() and xml.parent.name.startswith("efficientnetb0-32px-")
    assert [p.name for p in folder.iterdir()] == [xml.parent.name]   # no staging folder left behind
    stamp = xml.stat().st_mtime_ns
    again = KerasEmbedder(**KEPT, cache_dir=folder)
    assert conversions == [] and xml.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(_embed(again, _images(3)), expected)


@needs_openvino
def test_a_damaged_converted_model_is_converted_again(kept, conversions, tmp_path):
    folder, expected = kept
    (xml,) = folder.glob("*/model.xml")
    copy = tmp_path / xml.parent.name
    copy.mkdir()
    (copy / "model.xml").write_text("<net broken")
    (copy / "model.bin").write_bytes(xml.with_suffix(".bin").read_bytes()[:100])
    again = KerasEmbedder(**KEPT, cache_dir=tmp_path)
    assert len(conversions) == 1 and (copy / "model.bin").stat().st_size > 100
    _assert_equal_to_1e5_relative(_embed(again, _images(3)), expected)


def test_the_converted_models_key_is_backbone_weights_input_size_and_versions():
    base = dict(backbone="resnet50", weights="sha256:ab", input_size=224, versions={"openvino": "1", "keras": "3"})
    key = openvino_runtime.cache_key(**base)
    assert key == openvino_runtime.cache_key(**{**base, "versions": {"keras": "3", "openvino": "1"}})
    for change in ({"backbone": "vgg16"}, {"weights": "sha256:cd"}, {"input_size": 96},
                   {"versions": {"openvino": "2", "keras": "3"}}):
        assert openvino_runtime.cache_key(**{**base, **change}) != key, change


@needs_openvino
def test_openvino_runs_without_telemetry():
    """openvino-telemetry (a dependency of the wheel) would report usage at import and conversion."""
    openvino_runtime.import_openvino()
    from openvino.tools.ovc import convert_impl, telemetry_utils

    assert convert_impl.tm.__name__.endswith("telemetry_stub")
    assert telemetry_utils.tm.__name__.endswith("telemetry_stub")


def test_other_families_ignore_the_runtime():
    embedder = build_embedder("handcrafted", resolve_weights("handcrafted", None, seed=0), runtime="openvino",
                              cache_dir="/nonexistent")
    assert embedder.embed(np.stack([embedder.prepare(g) for g in _images(2)])).shape[0] == 2


# --- without the package ---------------------------------------------------------------------

@pytest.fixture
def no_openvino(monkeypatch):
    """openvino as if it were not installed (an import of it fails, find_spec finds nothing)."""
    monkeypatch.setitem(sys.modules, "openvino", None)


def test_openvino_missing_is_a_config_error_saying_how_to_install_it(tmp_path, no_openvino):
    study = make_study(tmp_path, backbones=("efficientnetb0", "handcrafted"),
                       extra={"extract": {"runtime": "openvino"}})
    with pytest.raises(ConfigError) as err:
        load_study(study)
    message = str(err.value)
    assert "extract.runtime:" in message and "not installed" in message
    assert "pip install -r requirements-openvino.txt" in message and "openvino==2026.4.1" in message


def test_openvino_missing_at_build_says_how_to_install_it(no_openvino):
    with pytest.raises(BackboneError, match=r"pip install -r requirements-openvino\.txt"):
        KerasEmbedder("efficientnetb0", resolve_weights("efficientnetb0", "random", seed=0), 32, 4, runtime="openvino")


def test_openvino_missing_does_not_matter_without_a_keras_backbone(tmp_path, no_openvino):
    study = load_study(make_study(tmp_path, backbones=("handcrafted",), extra={"extract": {"runtime": "openvino"}}))
    assert study.extract.runtime == "openvino"


def test_an_unknown_runtime_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"extract\.runtime: expected one of tensorflow, openvino, got 'onnx'"):
        load_study(make_study(tmp_path, extra={"extract": {"runtime": "onnx"}}))


# --- through the extract stage ---------------------------------------------------------------

def _embeddings(study, backbone="efficientnetb0"):
    return catalog(study).read("extract:embeddings", modality="ultrasound", backbone=backbone).embeddings


@needs_openvino
def test_the_stage_embeds_with_openvino_and_keeps_the_converted_model_in_the_run_cache(tmp_path):
    tf_study = load_study(make_study(tmp_path / "tf", n=6, backbones=("efficientnetb0",)))
    run(tf_study, "extract")
    ov_study = load_study(make_study(tmp_path / "ov", n=6, backbones=("efficientnetb0",)),
                          [parse_override("extract.runtime=openvino")])
    outcome = run(ov_study, "extract")["extract"]
    assert outcome.summary["computed"] == {"ultrasound/efficientnetb0": 6}
    assert len(list((ov_study.run_dir / ".cache" / "openvino").glob("efficientnetb0-32px-*/model.xml"))) == 1
    assert not (tf_study.run_dir / ".cache" / "openvino").exists()
    _assert_equal_to_1e5_relative(_embeddings(ov_study), _embeddings(tf_study))


@needs_openvino
def test_switching_the_runtime_keeps_the_cached_embeddings(tmp_path):
    """Result-neutral: the runtime is in no cache key, so a switch recomputes nothing."""
    study_file = make_study(tmp_path, n=4, backbones=("efficientnetb0",))
    run(load_study(study_file), "extract")
    again = run(load_study(study_file, [parse_override("extract.runtime=openvino")]), "extract")["extract"]
    assert not again.ran or sum(again.summary["computed"].values()) == 0
