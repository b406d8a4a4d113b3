"""Batched extraction on real BUSI images: deterministic across runs and batch sizes, and an
unreadable image is reported without losing the others."""

import numpy as np
import pytest

from features.backbones import HandcraftedEmbedder, build_embedder, resolve_weights
from features.extraction import ImageJob, run_extraction
from features.preprocess import PreprocessSpec

SPEC = PreprocessSpec.for_modality("ultrasound")


@pytest.fixture(scope="module")
def busi_images(shared_data):
    paths = sorted((shared_data / "busi" / "images" / "malignant").glob("*.png"))[:5]
    paths += sorted((shared_data / "busi" / "images" / "benign").glob("*.png"))[:4]
    assert len(paths) == 9
    return paths


@pytest.fixture(scope="module")
def extractors():
    return {"efficientnetb0": build_embedder("efficientnetb0", resolve_weights("efficientnetb0", "random", 0),
                                             input_size=48, batch_size=4),
            "handcrafted": HandcraftedEmbedder(input_size=64)}


def _run(paths, extractors, batch_size, workers=2, flip_tta=False):
    out = {name: {} for name in extractors}

    def on_result(name, jobs, emb):
        for job, row in zip(jobs, emb):
            out[name][job.case_id] = row

    jobs = [ImageJob(p.stem, p, None, {name: p.stem for name in extractors}) for p in paths]
    failures = run_extraction(jobs, extractors, SPEC, on_result, batch_size=batch_size, workers=workers,
                              flip_tta=flip_tta)
    ids = [p.stem for p in paths if p.stem in out["handcrafted"]]
    return {name: np.stack([rows[i] for i in ids]) for name, rows in out.items()}, failures


def test_embeddings_are_identical_across_runs(busi_images, extractors):
    first, _ = _run(busi_images, extractors, batch_size=4)
    second, _ = _run(busi_images, extractors, batch_size=4, workers=1)
    for name in extractors:
        np.testing.assert_array_equal(first[name], second[name])


def test_embeddings_do_not_depend_on_the_batch_size(busi_images, extractors):
    """Fixed-size padded batches: the images' grouping changes, their numbers don't."""
    big, _ = _run(busi_images, extractors, batch_size=4)
    small, _ = _run(busi_images, extractors, batch_size=3)
    for name in extractors:
        np.testing.assert_allclose(big[name], small[name], rtol=1e-5, atol=1e-5)


def test_images_differ_and_outputs_are_finite(busi_images, extractors):
    out, failures = _run(busi_images, extractors, batch_size=4)
    assert failures == []
    for emb in out.values():
        assert np.isfinite(emb).all()
        assert len({row.tobytes() for row in emb}) == len(busi_images)


def test_flip_tta_averages_the_mirror_view(busi_images, extractors):
    plain, _ = _run(busi_images[:2], extractors, batch_size=4)
    tta, _ = _run(busi_images[:2], extractors, batch_size=4, flip_tta=True)
    assert not np.allclose(plain["efficientnetb0"], tta["efficientnetb0"])


def test_an_unreadable_image_is_reported_and_the_rest_embedded(busi_images, extractors, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out, failures = _run([busi_images[0], bad, busi_images[1]], extractors, batch_size=4)
    assert [f.case_id for f in failures] == ["broken"]
    assert str(bad) in failures[0].path and failures[0].reason
    assert out["efficientnetb0"].shape[0] == 2
