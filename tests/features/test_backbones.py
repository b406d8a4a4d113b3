"""Backbones: output widths, seeded random weights, local weight files and the offline error."""

import urllib.error

import numpy as np
import pytest

from features.backbones import (HandcraftedEmbedder, KerasEmbedder, WeightsChoice, build_embedder,
                                resolve_weights)
from features.errors import BackboneError, WeightsError

SIZE = 32


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((48, 40)) * 255).astype(np.uint8) for _ in range(n)]


def _embed(embedder, images):
    return embedder.embed(np.stack([embedder.prepare(g) for g in images]))


@pytest.mark.parametrize("name, width", [("resnet50", 2048), ("vgg16", 512), ("efficientnetb0", 1280)])
def test_backbone_output_width_with_random_weights(name, width):
    embedder = build_embedder(name, resolve_weights(name, "random", seed=0), input_size=SIZE, batch_size=2)
    out = _embed(embedder, _images(3))
    assert out.shape == (3, width) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert embedder.spec["weights"] == "random" and embedder.spec["dim"] == width


def test_random_weights_are_seeded_per_backbone():
    a = resolve_weights("vgg16", "random", seed=1)
    assert a == resolve_weights("vgg16", "random", seed=1)
    assert a.identity != resolve_weights("vgg16", "random", seed=2).identity
    assert a.identity != resolve_weights("resnet50", "random", seed=1).identity
    first = _embed(KerasEmbedder("vgg16", a, SIZE, 2), _images(2))
    second = _embed(KerasEmbedder("vgg16", a, SIZE, 2), _images(2))  # built anew, not from the cache
    np.testing.assert_array_equal(first, second)


@pytest.fixture(scope="module")
def saved_weights(tmp_path_factory):
    """A seeded EfficientNet-B0 saved with save_weights, as a user's local weights file would be."""
    folder = tmp_path_factory.mktemp("weights")
    embedder = build_embedder("efficientnetb0", resolve_weights("efficientnetb0", "random", seed=5),
                              input_size=SIZE, batch_size=2)
    path = folder / "efficientnetb0_notop.weights.h5"
    embedder.model.save_weights(path)
    return path, _embed(embedder, _images(2))


def test_local_weights_file_gives_the_saved_model(saved_weights):
    path, expected = saved_weights
    choice = resolve_weights("efficientnetb0", str(path), seed=0)
    assert choice.kind == "file" and choice.identity.startswith("sha256:")
    embedder = build_embedder("efficientnetb0", choice, input_size=SIZE, batch_size=2)
    np.testing.assert_allclose(_embed(embedder, _images(2)), expected, rtol=1e-5, atol=1e-6)
    assert embedder.spec["weights_sha256"] == choice.identity.split(":")[1]


def test_weights_folder_is_searched_for_the_backbones_file(saved_weights):
    path, _ = saved_weights
    choice = resolve_weights("efficientnetb0", str(path.parent), seed=0)
    assert choice.path == path.resolve()


def test_weights_folder_without_the_file_says_what_it_expected(tmp_path):
    (tmp_path / "other.h5").write_bytes(b"x")
    with pytest.raises(WeightsError) as info:
        resolve_weights("resnet50", str(tmp_path), seed=0)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in str(info.value)
    assert "other.h5" in str(info.value)


def test_weights_path_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(WeightsError, match="neither 'imagenet', 'random'"):
        resolve_weights("vgg16", str(tmp_path / "missing.h5"), seed=0)


def test_weights_file_for_another_model_is_a_clear_error(saved_weights):
    path, _ = saved_weights
    with pytest.raises(WeightsError, match="could not be built"):
        build_embedder("vgg16", resolve_weights("vgg16", str(path), seed=0), input_size=SIZE)


def test_imagenet_offline_fails_fast_saying_where_to_put_the_file(tmp_path, monkeypatch):
    """With no network and no cached file, the error names the file, the cache folder and --weights."""
    from keras.src.backend import config
    from keras.src.utils import file_utils

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    choice = resolve_weights("efficientnetb0", "imagenet", seed=0)
    assert choice.kind == "imagenet" and choice.path is None
    with pytest.raises(WeightsError) as info:
        build_embedder("efficientnetb0", choice, input_size=SIZE)
    message = str(info.value)
    assert "efficientnetb0_notop.h5" in message
    assert str(tmp_path / "models") in message
    assert "--weights" in message


def test_unknown_backbone_lists_the_known_names():
    with pytest.raises(BackboneError, match="Unknown backbone 'resnet5'.*resnet50"):
        build_embedder("resnet5", WeightsChoice("random", "random:seed=1", seed=1), input_size=SIZE)


def test_any_keras_applications_name_works():
    embedder = build_embedder("mobilenetv2", resolve_weights("mobilenetv2", "random", 0), input_size=SIZE)
    assert _embed(embedder, _images(1)).shape == (1, 1280)


def test_handcrafted_embedder_is_a_block_like_any_backbone():
    embedder = HandcraftedEmbedder(input_size=64)
    out = _embed(embedder, _images(2))
    assert out.shape == (2, len(embedder.feature_names)) and np.isfinite(out).all()
