"""Exact and near-duplicate detection: re-encoded copies, re-crops and unrelated images."""

import cv2
import numpy as np

from features.duplicates import duplicate_groups, duplicate_pairs, pixel_digest, thumbnail_signature


def _scene(seed, size=128):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur((rng.random((size, size)) * 255).astype(np.uint8), (0, 0), 4)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)


def test_copies_and_recrops_are_grouped_and_unrelated_images_are_not():
    a, b = _scene(1), _scene(2)
    recrop = cv2.resize(a[1:-1, 1:-1], (200, 190), interpolation=cv2.INTER_LINEAR)   # re-cropped, re-scaled
    recrop = cv2.convertScaleAbs(recrop, alpha=0.8, beta=20)                            # and re-windowed
    images = [a, b, a.copy(), recrop, _scene(3)]
    pairs = duplicate_pairs([pixel_digest(g) for g in images], [thumbnail_signature(g) for g in images])
    kinds = {(i, j): kind for i, j, kind, _ in pairs}
    assert kinds[(0, 2)] == "exact" and kinds[(0, 3)] == "near" and kinds[(2, 3)] == "near"
    assert not any(1 in p[:2] or 4 in p[:2] for p in pairs)
    assert duplicate_groups(len(images), pairs).tolist() == [0, -1, 0, 0, -1]


def test_a_flat_image_has_a_zero_signature_and_no_near_duplicate():
    flat = np.full((32, 32), 7, np.uint8)
    assert not thumbnail_signature(flat).any()
    assert duplicate_pairs(["x", "y"], [thumbnail_signature(flat), thumbnail_signature(_scene(4))]) == []
