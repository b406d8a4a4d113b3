"""Backbones: output widths, seeded random weights, local weight files, the offline error, name
validation without TensorFlow, dispatch to families, and TensorFlow's global state left alone."""

import importlib.util
import random
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from features.backbones import (BACKBONES, FAMILIES, Embedder, Family, HandcraftedEmbedder, KerasEmbedder,
                                WeightsChoice, backbone_problems, build_embedder, default_input_size, family_of,
                                resolve_weights)
from features.backbones.keras_family import scoped_global_state
from features.backbones.keras_names import KERAS_APPLICATIONS
from features.errors import BackboneError, WeightsError

REPO = Path(__file__).resolve().parents[2]

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


def test_names_are_checked_without_importing_tensorflow():
    code = ("import sys\nfrom features.backbones import backbone_problems\n"
            "for name in ('resnet50', 'ResNet50', 'mobilenetv2', 'convnexttiny', 'handcrafted'):\n"
            "    assert backbone_problems(name) == [], name\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'cv2', 'skimage') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_unknown_backbone_keeps_the_spelling_and_suggests_the_closest():
    [problem] = backbone_problems("Resnet5O")
    assert problem.startswith("Unknown backbone 'Resnet5O'; did you mean 'resnet50'? Known: handcrafted, resnet50, ")
    assert problem.endswith("(any keras.applications model)")


def test_unknown_backbone_far_from_any_name_only_lists_the_known():
    [problem] = backbone_problems("zzz")
    assert problem.startswith("Unknown backbone 'zzz'. Known: handcrafted") and "did you mean" not in problem


def test_weights_problems_are_per_family(tmp_path):
    weights_file = tmp_path / "vgg16.h5"
    weights_file.write_bytes(b"not read")
    assert backbone_problems("handcrafted") == backbone_problems("handcrafted", "none") == []
    assert backbone_problems("handcrafted", "imagenet") == [
        "Backbone 'handcrafted' takes no weights (got 'imagenet'): leave its weights unset."]
    for fine in ("imagenet", "random", str(weights_file), str(tmp_path)):
        assert backbone_problems("vgg16", fine) == []
    [missing] = backbone_problems("vgg16", str(tmp_path / "missing.h5"))
    assert "'vgg16' not found" in missing and "missing.h5" in missing
    assert backbone_problems("", None) == ["Expected a backbone name, got ''."]


def test_names_dispatch_to_their_family():
    assert family_of("handcrafted") == "handcrafted"
    assert family_of("vgg16") == family_of("Xception") == "keras"
    assert default_input_size("handcrafted") == 256 and default_input_size("inceptionv3") == 299
    assert default_input_size("xception") == 299      # from the generated list, not the registry
    assert default_input_size("mobilenetv3small") == 224  # declares none: the generic size
    assert resolve_weights("handcrafted", "imagenet", 0).kind == "none"
    assert isinstance(build_embedder("handcrafted", resolve_weights("handcrafted", None, 0), 64), HandcraftedEmbedder)
    with pytest.raises(BackboneError, match="Unknown backbone 'nope'"):
        family_of("nope")


def test_every_family_provides_the_protocol():
    members = set(Family.__annotations__) | {n for n, v in vars(Family).items() if callable(v) and n[0] != "_"}
    assert {"knows", "names", "default_input_size", "resolve_weights", "problems", "build", "NOTE"} <= members
    for name, family in FAMILIES.items():
        assert [m for m in sorted(members) if not hasattr(family, m)] == [], name
        assert all(family.knows(n) for n in family.names(every=True)), name


def test_embedders_satisfy_the_embedder_protocol():
    keras_embedder = build_embedder("vgg16", resolve_weights("vgg16", "random", seed=0), input_size=SIZE,
                                    batch_size=2)
    assert isinstance(keras_embedder, Embedder) and keras_embedder.feature_names is None
    assert isinstance(HandcraftedEmbedder(input_size=64), Embedder)


def test_registry_agrees_with_the_generated_keras_names():
    for name, info in BACKBONES.items():
        assert KERAS_APPLICATIONS[name] == (info.class_name, info.input_size), name


def test_generated_keras_names_match_the_installed_keras():
    spec = importlib.util.spec_from_file_location("keras_application_names",
                                                  REPO / "scripts" / "keras_application_names.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.collect() == KERAS_APPLICATIONS, "run scripts/keras_application_names.py"


def test_random_weights_are_those_of_a_process_wide_seed():
    """Scoping the seed changed no number: the weights are those of a global seed set before building."""
    import keras

    choice = resolve_weights("vgg16", "random", seed=3)
    scoped = KerasEmbedder("vgg16", choice, SIZE, 2)
    saved = random.getstate(), np.random.get_state()
    try:   # how the embedder seeded before: process-wide, then build
        keras.utils.set_random_seed(choice.seed)
        unscoped = keras.applications.VGG16(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3),
                                            pooling="avg")
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
    for new, old in zip(scoped.model.get_weights(), unscoped.get_weights(), strict=True):
        np.testing.assert_array_equal(new, old)


def test_building_an_embedder_leaves_global_randomness_and_precision_alone():
    import keras
    from keras.src.utils.rng_utils import get_random_seed
    from tensorflow.python.eager import context

    before = (keras.config.dtype_policy().name, get_random_seed(), context.global_seed())
    random.seed(11)
    np.random.seed(11)
    expected = random.random(), np.random.random()
    random.seed(11)
    np.random.seed(11)
    KerasEmbedder("vgg16", resolve_weights("vgg16", "random", seed=7), SIZE, 2)
    assert (random.random(), np.random.random()) == expected
    assert (keras.config.dtype_policy().name, get_random_seed(), context.global_seed()) == before


def test_mixed_precision_policy_is_set_for_construction_only():
    import keras

    before = keras.config.dtype_policy().name
    with scoped_global_state(keras, policy="mixed_float16"):
        layer = keras.layers.Dense(2)
    assert layer.dtype_policy.name == "mixed_float16"
    assert keras.config.dtype_policy().name == before == "float32"
