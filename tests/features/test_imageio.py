"""Tests for features.imageio: raster and DICOM reading, gray conversion, masks, header checks."""

import cv2
import numpy as np
import pytest

from features.errors import ImageError
from features.imageio import (
    image_problem,
    read_gray,
    read_image,
    read_mask,
    to_gray_uint8,
)
from study_factory import make_dicom


def ramp(dtype=np.uint8, shape=(24, 32)):
    """A gradient, so a wrong axis or a lossy round trip shows up as changed values."""
    high = np.iinfo(dtype).max
    values = np.linspace(0, high, shape[0] * shape[1]).reshape(shape)
    return np.rint(values).astype(dtype)


def write(path, img):
    assert cv2.imwrite(str(path), img), f"cv2 could not write {path}"
    return path


@pytest.mark.parametrize("suffix", [".png", ".pgm", ".tif", ".bmp"])
def test_read_image_round_trips_8bit_gray_losslessly(tmp_path, suffix):
    img = ramp(np.uint8)
    out = read_image(write(tmp_path / f"img{suffix}", img))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_read_image_keeps_16bit_depth(tmp_path, suffix):
    img = ramp(np.uint16)
    out = read_image(write(tmp_path / f"img{suffix}", img))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, img)


def test_read_image_decodes_jpeg_close_to_original(tmp_path):
    img = ramp(np.uint8)
    out = read_image(write(tmp_path / "img.jpg", img))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 3


def test_read_image_returns_colour_in_rgb_order(tmp_path):
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 255  # red, in OpenCV's BGR order
    out = read_image(write(tmp_path / "red.png", bgr))
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])


def test_read_image_drops_alpha(tmp_path):
    bgra = np.zeros((8, 8, 4), np.uint8)
    bgra[..., 0] = 200  # blue
    bgra[..., 3] = 17
    out = read_image(write(tmp_path / "alpha.png", bgra))
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out[0, 0], [0, 0, 200])


def test_read_image_reads_ppm_colour(tmp_path):
    bgr = np.zeros((6, 5, 3), np.uint8)
    bgr[..., 1] = 99
    out = read_image(write(tmp_path / "img.ppm", bgr))
    np.testing.assert_array_equal(out[0, 0], [0, 99, 0])


def test_to_gray_uint8_converts_rgb_with_luma_weights():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 200  # pure green: luma 0.587 * 200
    gray = to_gray_uint8(rgb)
    assert gray.shape == (4, 4) and gray.dtype == np.uint8
    assert abs(int(gray[0, 0]) - round(0.587 * 200)) <= 1


def test_to_gray_uint8_passes_uint8_through_unchanged():
    img = ramp(np.uint8)
    np.testing.assert_array_equal(to_gray_uint8(img), img)


def test_to_gray_uint8_scales_16bit_linearly_to_full_range():
    img = np.array([[1000, 2000], [3000, 5000]], np.uint16)
    np.testing.assert_array_equal(to_gray_uint8(img), [[0, 64], [128, 255]])


def test_to_gray_uint8_maps_constant_image_to_zeros():
    assert not to_gray_uint8(np.full((5, 5), 7.5, np.float32)).any()


def test_read_gray_scales_16bit_png_to_uint8(tmp_path):
    gray = read_gray(write(tmp_path / "deep.png", ramp(np.uint16)))
    assert gray.dtype == np.uint8 and gray.ndim == 2
    assert gray.min() == 0 and gray.max() == 255


def test_read_mask_counts_any_positive_channel_and_resizes_nearest(tmp_path):
    mask = np.zeros((10, 10, 3), np.uint8)
    mask[2:6, 4:8, 1] = 1  # only the green channel set
    out = read_mask(write(tmp_path / "mask.png", mask), shape=(20, 20))
    assert out.dtype == bool and out.shape == (20, 20)
    expected = np.zeros((20, 20), bool)
    expected[4:12, 8:16] = True
    np.testing.assert_array_equal(out, expected)


def test_read_mask_without_shape_keeps_size(tmp_path):
    mask = np.zeros((7, 9), np.uint8)
    mask[3, 4] = 255
    out = read_mask(write(tmp_path / "mask.png", mask))
    assert out.shape == (7, 9) and out.sum() == 1 and out[3, 4]


# --- DICOM -------------------------------------------------------------------------------------

AIR, FAT, DENSE, MARKER = 4000, 1200, 200, 100  # MONOCHROME1: low stored value = bright


def phantom():
    pixels = np.full((16, 16), AIR, np.uint16)
    pixels[4:12, 2:8] = FAT
    pixels[4:12, 8:14] = DENSE
    pixels[0, 0] = MARKER
    return pixels


def test_read_image_inverts_monochrome1_dicom_so_dense_tissue_is_bright(tmp_path):
    out = read_image(make_dicom(tmp_path / "mg.dcm", phantom()))
    assert out.dtype == np.float32 and out.shape == (16, 16)
    assert out[6, 10] > out[6, 4] > out[0, 5]  # dense > fat > air


def test_read_image_clips_dicom_values_outside_the_window(tmp_path):
    # Window 1000 ± 700 covers FAT only; DENSE and MARKER lie below it, AIR above it.
    out = read_image(make_dicom(tmp_path / "mg.dcm", phantom()))
    assert out[0, 0] == out[6, 10] == out.max()  # both below the window: same, brightest
    assert out[0, 5] == out.min()  # air above the window: darkest
    assert out.min() < out[6, 4] < out.max()  # fat inside the window keeps a mid value


def test_read_image_leaves_monochrome2_dicom_uninverted(tmp_path):
    pixels = np.array([[100, 3000]], np.uint16)
    out = read_image(make_dicom(tmp_path / "mg.dcm", pixels, "MONOCHROME2", window=None))
    assert out[0, 0] < out[0, 1]


def test_read_image_applies_voi_lut_sequence_after_rescale(tmp_path):
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    path = make_dicom(tmp_path / "lut.dcm", np.array([[0, 1, 2, 3, 9]], np.uint16), window=None)
    ds = pydicom.dcmread(path)
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]
    item.LUTData = np.array([0, 10, 200, 255], np.uint16).tobytes()  # OW, little endian
    ds.VOILUTSequence = Sequence([item])
    ds.save_as(path, enforce_file_format=True)
    out = read_image(path)
    # MONOCHROME1 inverts about the LUT's 8-bit output range; 9 is past the LUT: its last entry.
    np.testing.assert_array_equal(out, [[255, 245, 55, 0, 0]])


def test_read_gray_gives_uint8_for_dicom(tmp_path):
    gray = read_gray(make_dicom(tmp_path / "mg.dcm", phantom()))
    assert gray.dtype == np.uint8 and gray[6, 10] == 255 and gray[0, 5] == 0


def test_read_image_detects_dicom_by_magic_without_suffix(tmp_path):
    path = make_dicom(tmp_path / "mg.dcm", phantom())
    renamed = path.rename(tmp_path / "IM0001")
    assert read_image(renamed).dtype == np.float32


def test_read_image_rejects_dicom_without_pixel_data(tmp_path):
    path = make_dicom(tmp_path / "empty.dcm", phantom(), with_pixels=False)
    with pytest.raises(ImageError, match="no pixel data") as info:
        read_image(path)
    assert info.value.path == str(path)


# --- errors and cheap checks -------------------------------------------------------------------


def test_read_image_missing_file_raises_image_error_naming_path(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(ImageError, match="file not found") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_read_image_truncated_png_raises_image_error(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(ImageError, match="could not decode") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_read_image_garbage_file_raises_image_error(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image")
    with pytest.raises(ImageError, match="not a readable image"):
        read_image(path)


@pytest.mark.filterwarnings("ignore:End of file reached")
def test_read_image_corrupt_dicom_raises_image_error(tmp_path):
    path = tmp_path / "broken.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 20)
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_image_problem_accepts_supported_files(tmp_path):
    assert image_problem(write(tmp_path / "a.png", ramp())) is None
    assert image_problem(write(tmp_path / "a.jpg", ramp())) is None
    assert image_problem(write(tmp_path / "a.tif", ramp())) is None
    assert image_problem(write(tmp_path / "a.pgm", ramp())) is None
    assert image_problem(make_dicom(tmp_path / "a.dcm", phantom())) is None


def test_image_problem_checks_only_the_header(tmp_path):
    path = tmp_path / "truncated.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # read_image would fail on it
    assert image_problem(path) is None


def test_image_problem_reports_missing_empty_and_garbage(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.png"
    garbage.write_text("case_id,label\n")
    assert image_problem(tmp_path / "missing.png") == "file not found"
    assert image_problem(empty) == "empty file"
    assert "unrecognised header" in image_problem(garbage)
