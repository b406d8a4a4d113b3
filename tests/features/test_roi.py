"""Lesion ROIs from circles and boxes: drawn where the lesion is, at the image's own size."""

import cv2
import numpy as np
import pandas as pd
import pytest

from features.roi import RoiShape, is_roi_text, parse_box_text


def test_text_round_trips_and_is_canonical():
    roi = RoiShape("circle", ((535, 425, 197), (10.5, 3, 2)), (1024, 1024), "bottom-left")
    assert is_roi_text(roi.text())
    assert RoiShape.from_text(roi.text()) == roi
    assert RoiShape("circle", ((535.0, 425.0, 197.0), (10.5, 3, 2)), (1024.0, 1024), "bottom-left").text() == roi.text()


def test_circle_in_a_1024_frame_lands_at_half_scale_on_a_512_image():
    full = RoiShape("circle", ((300, 200, 40),), (1024, 1024)).mask((1024, 1024))
    half = RoiShape("circle", ((300, 200, 40),), (1024, 1024)).mask((512, 512))
    ys, xs = np.nonzero(half)
    assert abs(xs.mean() - 150) < 1 and abs(ys.mean() - 100) < 1
    assert abs(half.sum() - full.sum() / 4) / half.sum() < 0.05
    assert abs(half.sum() - np.pi * 20 ** 2) / half.sum() < 0.05


def test_bottom_left_origin_flips_y():
    mask = RoiShape("circle", ((100, 50, 10),), (200, 400), "bottom-left").mask((400, 200))
    ys, xs = np.nonzero(mask)
    assert abs(ys.mean() - (400 - 1 - 50)) < 1 and abs(xs.mean() - 100) < 1


def test_box_in_original_pixels_scales_to_the_resized_image():
    mask = RoiShape("box", ((100, 40, 60, 20),), (400, 200)).mask((100, 200))
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (50, 80, 20, 30)


def test_box_text_forms():
    assert parse_box_text("[10, 20, 30, 40]") == [(10, 20, 30, 40)]
    assert parse_box_text("[1,2,3,4];[5,6,7,8]") == [(1, 2, 3, 4), (5, 6, 7, 8)]
    with pytest.raises(ValueError, match="4 numbers per box"):
        parse_box_text("[1, 2, 3]")


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError, match="3 numbers"):
        RoiShape("circle", ((1, 2),))
    with pytest.raises(ValueError, match="> 0"):
        RoiShape("box", ((1, 2, 0, 4),))


def test_mini_mias_circles_land_on_the_lesion_only_with_the_origin_flipped(shared_data):
    """A mass is brighter than the tissue around it: with the origin bottom-left (as mini-MIAS gives
    it) the circle is brighter than the ring around it on nearly every film; read top-left, on about half."""
    root = shared_data / "mini_mias"
    frame = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    frame = frame[(frame.x != "") & ~frame.x.str.contains(";")].iloc[:40]
    hits = {"bottom-left": 0, "top-left": 0}
    for _, row in frame.iterrows():
        gray = cv2.imread(str(root / row.mammography_path), cv2.IMREAD_GRAYSCALE)
        x, y, r = float(row.x), float(row.y), float(row.radius)
        for origin in hits:
            inside = RoiShape("circle", ((x, y, r),), (1024, 1024), origin).mask(gray.shape)
            ring = RoiShape("circle", ((x, y, 2 * r),), (1024, 1024), origin).mask(gray.shape) & ~inside
            hits[origin] += gray[inside].mean() > gray[ring].mean() + 5
    assert hits["bottom-left"] >= 0.85 * len(frame)
    assert hits["top-left"] <= 0.65 * len(frame)
