"""Occlusion sensitivity as pure array code: patches tile the image, and hiding a bright lesion lowers
a score that depends on it."""

import numpy as np
import pytest

from features.occlusion import iter_occluded, occlusion_map, patch_boxes, thumbnail


def _lesion_image():
    """60x60 dark noise with a bright square filling the middle-right cell of a 3x3 grid."""
    rng = np.random.default_rng(0)
    img = (rng.random((60, 60)) * 40).astype(np.uint8)
    img[22:38, 42:58] = 230
    return img


def _brightness(images):
    return [float(np.asarray(im, float).mean()) for im in images]


def test_patches_tile_the_image_exactly_once():
    cover = np.zeros((61, 47), int)
    for y0, y1, x0, x1 in patch_boxes(cover.shape, 5):
        cover[y0:y1, x0:x1] += 1
    assert (cover == 1).all()


@pytest.mark.parametrize("fill", ["mean", "blur"])
def test_occluding_the_bright_lesion_lowers_the_score_most(fill):
    drops, base = occlusion_map(_lesion_image(), _brightness, 3, fill)
    assert drops.shape == (3, 3)
    assert np.unravel_index(np.argmax(drops), drops.shape) == (1, 2)
    assert drops[1, 2] > 0
    assert base == pytest.approx(_lesion_image().mean())


def test_each_occluded_image_changes_only_its_own_patch():
    img = _lesion_image()
    boxes = patch_boxes(img.shape, 3)
    for (y0, y1, x0, x1), out in zip(boxes, iter_occluded(img, 3)):
        changed = out != img
        outside = np.ones_like(changed)
        outside[y0:y1, x0:x1] = False
        assert not changed[outside].any()
        assert (out[y0:y1, x0:x1] == round(img.mean())).all()


def test_the_scorer_must_score_every_image():
    with pytest.raises(ValueError, match="10 scores"):
        occlusion_map(_lesion_image(), lambda images: [1.0], 3)


def test_thumbnail_keeps_the_aspect_and_never_upsamples():
    assert thumbnail(np.zeros((400, 200), np.uint8), 100).shape == (100, 50)
    assert thumbnail(np.zeros((40, 20), np.uint8), 100).shape == (40, 20)
