"""Decode once: a backbone added later reads the preprocessed images back instead of decoding them."""

import numpy as np
import pytest

import features.extraction as extraction
from pipeline.config import load_study
from study_factory import catalog, make_study, run


@pytest.fixture
def counted_decodes(monkeypatch):
    calls = []
    real = extraction.read_gray

    def counting(path, *args, **kwargs):
        calls.append(path)
        return real(path, *args, **kwargs)
    monkeypatch.setattr(extraction, "read_gray", counting)
    return calls


def _with(study, *backbones, **extract):
    return study.with_overrides([(["extract", "backbones"], list(backbones))]
                                + [(["extract", k], v) for k, v in extract.items()])


def test_adding_a_backbone_decodes_no_image_again(tmp_path, counted_decodes):
    study = load_study(make_study(tmp_path, n=6, modalities=("ultrasound", "mammography")))
    first = run(_with(study, "handcrafted"), "extract")["extract"]
    assert len(counted_decodes) == 12 and first.summary["decoded"] == {"hits": 0, "decoded": 12}
    counted_decodes.clear()
    second = run(_with(study, "handcrafted", "efficientnetb0"), "extract")["extract"]
    assert counted_decodes == []
    assert second.summary["decoded"] == {"hits": 12, "decoded": 0}
    assert second.summary["computed"] == {"ultrasound/efficientnetb0": 6, "mammography/efficientnetb0": 6}


def test_embeddings_from_cached_images_equal_those_from_decoding(tmp_path):
    cached = load_study(make_study(tmp_path / "a", n=6))
    run(_with(cached, "handcrafted"), "extract")
    run(_with(cached, "handcrafted", "efficientnetb0"), "extract")
    plain = load_study(make_study(tmp_path / "b", n=6))
    run(_with(plain, "handcrafted", "efficientnetb0", decode_cache=False), "extract")
    assert not (plain.run_dir / ".cache").exists()
    for backbone in ("handcrafted", "efficientnetb0"):
        a = catalog(cached).read("extract:embeddings", modality="ultrasound", backbone=backbone)
        b = catalog(plain).read("extract:embeddings", modality="ultrasound", backbone=backbone)
        np.testing.assert_array_equal(a.embeddings, b.embeddings)


def test_a_damaged_cache_entry_is_decoded_again(tmp_path, counted_decodes):
    study = load_study(make_study(tmp_path, n=4))
    run(_with(study, "handcrafted"), "extract")
    pngs = sorted((study.run_dir / ".cache" / "decoded").glob("*/*[0-9a-f].png"))
    assert len(pngs) == 4
    pngs[0].write_bytes(b"not a png")
    counted_decodes.clear()
    outcome = run(_with(study, "handcrafted", "efficientnetb0"), "extract")["extract"]
    assert len(counted_decodes) == 1 and outcome.summary["decoded"] == {"hits": 3, "decoded": 1}


def test_changing_preprocessing_misses_and_images_gone_from_the_study_are_pruned(tmp_path):
    study = load_study(make_study(tmp_path, n=4))
    run(_with(study, "handcrafted"), "extract")
    other = _with(study, "handcrafted").with_overrides([(["modalities", "ultrasound", "preprocessing", "clahe"], False)])
    outcome = run(other, "extract")["extract"]
    assert outcome.summary["decoded"] == {"hits": 0, "decoded": 4}
    assert len(list((study.run_dir / ".cache" / "decoded").glob("*/*.json"))) == 4
