"""Compressed, multi-frame and FOR PROCESSING DICOMs through read_image (features.dicom).

Every file is encoded here from a real image in ../shared/data: a Mini-DDSM film made 16-bit and
a BUSI ultrasound as 8-bit. pydicom encodes RLE, JPEG-LS and JPEG 2000 itself; it has no JPEG
(process 1, 2-4, 14) encoder, so those frames come from imagecodecs (libjpeg-turbo), a
different implementation from the decoder under test (libjpeg, through pylibjpeg).
"""

import cv2
import numpy as np
import pytest

from features.errors import ImageError
from features.imageio import read_image

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom: plugin choice notices


# --- real sources ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mammo16(shared_data):
    """A Mini-DDSM film at 96x160, interpolated into 16 bits (every value used, not just x257)."""
    film = cv2.imread(str(shared_data / "mini_ddsm_subset/images/C_0029_1.LEFT_CC.png"), cv2.IMREAD_GRAYSCALE)
    assert film is not None
    small = cv2.resize(film.astype(np.float32) * 257.0, (96, 160), interpolation=cv2.INTER_AREA)
    out = np.clip(np.rint(small), 0, 65535).astype(np.uint16)
    assert len(np.unique(out)) > 1000 and out.max() > 4096  # really 16-bit content
    return out


@pytest.fixture(scope="module")
def us8(shared_data):
    img = cv2.imread(str(shared_data / "busi/images/benign/benign_001.png"), cv2.IMREAD_GRAYSCALE)
    assert img is not None
    return cv2.resize(img, (128, 96), interpolation=cv2.INTER_AREA)


def dataset(pixels, bits=None, intent=None, frames=None):
    """An uncompressed MONOCHROME2 dataset (no window, no rescale: display values = stored values)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    bits = bits or pixels.dtype.itemsize * 8
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if frames is not None:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = pixels.dtype.itemsize * 8, bits, bits - 1
    ds.PixelRepresentation = 0
    if intent is not None:
        ds.PresentationIntentType = intent
    ds.PixelData = pixels.tobytes()
    return ds


def save(ds, path):
    ds.save_as(path, enforce_file_format=True)
    return path


def jpeg_encoded(ds, pixels, syntax, **options):
    """``ds`` re-encoded with imagecodecs into a JPEG syntax pydicom cannot write itself."""
    import imagecodecs
    import pydicom.uid
    from pydicom.encaps import encapsulate

    bits = int(ds.BitsStored)
    if syntax in ("JPEGLossless", "JPEGLosslessSV1"):
        predictor = 1 if syntax == "JPEGLosslessSV1" else 6  # SV1 is predictor 1; any other is plain process 14
        frame = imagecodecs.jpeg8_encode(pixels, lossless=True, predictor=predictor, bitspersample=bits)
        assert _jpeg_predictor(frame) == predictor
    else:
        frame = imagecodecs.jpeg8_encode(pixels, level=options.get("quality", 90), bitspersample=bits)
    ds.file_meta.TransferSyntaxUID = getattr(pydicom.uid, syntax)
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def _jpeg_predictor(frame):
    """The selection value (predictor) of a lossless JPEG's first scan: Ss in its SOS segment."""
    sos = frame.index(b"\xff\xda")
    components = frame[sos + 4]
    return frame[sos + 5 + 2 * components]


def encoded(pixels, syntax, bits=None, **options):
    import pydicom.uid

    ds = dataset(pixels, bits)
    if syntax.startswith("JPEG") and not syntax.startswith(("JPEGLS", "JPEG2000")):
        return jpeg_encoded(ds, pixels, syntax, **options)
    ds.compress(getattr(pydicom.uid, syntax), pixels, **options)
    return ds


def psnr(a, b, peak):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return np.inf if mse == 0 else 10 * np.log10(peak**2 / mse)


def _read_back(path):
    import pydicom

    return pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID


# --- every compressed syntax -------------------------------------------------------------------

LOSSLESS = ["JPEGLossless", "JPEGLosslessSV1", "JPEGLSLossless", "JPEG2000Lossless", "RLELossless"]


@pytest.mark.parametrize("source", ["mammo16", "us8"])
@pytest.mark.parametrize("syntax", LOSSLESS)
def test_lossless_syntax_decodes_to_exactly_the_uncompressed_pixels(tmp_path, request, source, syntax):
    import pydicom.uid

    pixels = request.getfixturevalue(source)
    plain = read_image(save(dataset(pixels), tmp_path / "plain.dcm"))
    path = save(encoded(pixels, syntax), tmp_path / f"{syntax}.dcm")
    assert _read_back(path) == getattr(pydicom.uid, syntax)
    assert pixels.tobytes() not in path.read_bytes()  # really encoded, not the raw values under a new name
    out = read_image(path)
    assert out.dtype == np.float32 and out.shape == pixels.shape
    np.testing.assert_array_equal(out, plain)
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize(("syntax", "source", "bits", "options"), [
    ("JPEGBaseline8Bit", "us8", 8, {"quality": 90}),
    ("JPEGExtended12Bit", "mammo16", 12, {"quality": 90}),
    ("JPEGLSNearLossless", "mammo16", 16, {"jls_error": 4}),
    ("JPEG2000", "mammo16", 16, {"j2k_cr": [20]}),
    ("JPEG2000", "us8", 8, {"j2k_cr": [4]}),
])
def test_lossy_syntax_decodes_close_to_the_source(tmp_path, request, syntax, source, bits, options):
    pixels = request.getfixturevalue(source)
    if bits == 12:
        pixels = (pixels >> 4).astype(np.uint16)
    path = save(encoded(pixels, syntax, bits, **options), tmp_path / f"{syntax}.dcm")
    out = read_image(path)
    assert out.shape == pixels.shape
    assert not np.array_equal(out, pixels)  # lossy indeed, so the PSNR below measures something
    assert psnr(out, pixels, 2**bits - 1) > 35


def test_jpeg_ls_near_lossless_keeps_every_pixel_within_its_error_bound(tmp_path, mammo16):
    path = save(encoded(mammo16, "JPEGLSNearLossless", jls_error=4), tmp_path / "nl.dcm")
    assert np.abs(read_image(path) - mammo16.astype(np.float32)).max() <= 4


def test_a_syntax_whose_decoder_is_not_installed_names_it_and_the_package(tmp_path, monkeypatch, mammo16):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    path = save(encoded(mammo16, "JPEGLSLossless"), tmp_path / "jls.dcm")
    monkeypatch.setattr(get_decoder(JPEGLSLossless), "_available", {})  # as if no plugin were installed
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert info.value.path == str(path)
    assert "JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80)" in info.value.reason
    assert "no decoder installed; install pyjpegls" in info.value.reason


def test_a_syntax_pydicom_cannot_decode_at_all_says_to_convert_it(tmp_path, us8):
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG2MPML

    ds = dataset(us8)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    with pytest.raises(ImageError, match=r"MPEG2 Main Profile / Main Level \(1.2.840.10008.1.2.4.100\): "
                                         r"pydicom has no decoder for it; convert"):
        read_image(save(ds, tmp_path / "video.dcm"))


# --- multi-frame -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frames(mammo16):
    """Three frames of one film, each a little brighter and one with a bright spot (for max)."""
    stack = np.stack([mammo16 // 2 + 1000 * k for k in range(3)]).astype(np.uint16)
    stack[0, 5, 5] = 60000
    return stack


@pytest.fixture(params=["ExplicitVRLittleEndian", "JPEGLSLossless"])
def multi_frame(request, tmp_path, frames):
    import pydicom.uid

    ds = dataset(frames, frames=len(frames))
    if request.param != "ExplicitVRLittleEndian":
        ds.compress(getattr(pydicom.uid, request.param), frames)
    return save(ds, tmp_path / "multi.dcm")


def test_multi_frame_is_refused_by_default_saying_which_setting_to_set(multi_frame):
    with pytest.raises(ImageError, match=r"multi-frame DICOM \(3 frames\): set "
                                         r"modalities.<modality>.preprocessing.dicom_frame to a frame index "
                                         r"\(0 to 2\) or to mean or max"):
        read_image(multi_frame)


@pytest.mark.parametrize("index", [0, 2])
def test_dicom_frame_index_picks_that_frame(multi_frame, frames, index):
    np.testing.assert_array_equal(read_image(multi_frame, dicom_frame=index), frames[index])


def test_dicom_frame_mean_and_max_pool_all_frames(multi_frame, frames):
    np.testing.assert_allclose(read_image(multi_frame, dicom_frame="mean"), frames.mean(axis=0), rtol=1e-6)
    peak = read_image(multi_frame, dicom_frame="max")
    np.testing.assert_array_equal(peak, frames.max(axis=0))
    assert peak[5, 5] == 60000


def test_dicom_frame_out_of_range_says_how_many_frames_there_are(multi_frame):
    with pytest.raises(ImageError, match=r"dicom_frame 3 is out of range: this DICOM has 3 frames \(0 to 2\)"):
        read_image(multi_frame, dicom_frame=3)


def test_dicom_frame_pooling_on_a_single_frame_file_is_that_frame(tmp_path, us8):
    path = save(dataset(us8), tmp_path / "one.dcm")
    np.testing.assert_array_equal(read_image(path, dicom_frame="max"), us8)
    np.testing.assert_array_equal(read_image(path, dicom_frame=0), us8)


def test_pooled_frames_are_windowed_once_after_pooling(tmp_path, frames):
    ds = dataset(frames, frames=len(frames))
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 2, -100, "US"
    out = read_image(save(ds, tmp_path / "rescaled.dcm"), dicom_frame="mean")
    np.testing.assert_allclose(out, frames.mean(axis=0) * 2 - 100, rtol=1e-6)


# --- FOR PROCESSING ------------------------------------------------------------------------------


def test_for_processing_dicom_is_refused_saying_what_it_is_and_how_to_allow_it(tmp_path, mammo16):
    path = save(dataset(mammo16, intent="FOR PROCESSING"), tmp_path / "raw.dcm")
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert "FOR PROCESSING DICOM (Presentation Intent Type): the raw detector image" in info.value.reason
    assert "dicom_for_processing: true" in info.value.reason


def test_for_processing_dicom_allowed_is_read_with_a_note(tmp_path, mammo16):
    path = save(dataset(mammo16, intent="FOR PROCESSING"), tmp_path / "raw.dcm")
    notes = []
    np.testing.assert_array_equal(read_image(path, dicom_for_processing=True, notes=notes), mammo16)
    assert notes == ["DICOM is FOR PROCESSING (a raw detector image), embedded as it is "
                     "(dicom_for_processing: true)"]


def test_for_presentation_dicom_is_read_without_a_note(tmp_path, mammo16):
    notes = []
    read_image(save(dataset(mammo16, intent="FOR PRESENTATION"), tmp_path / "p.dcm"), notes=notes)
    assert notes == []


# --- the settings: spec, study file, extraction --------------------------------------------------

OLD_KEYS = ["kind", "otsu_crop", "crop_margin", "denoise", "denoise_ksize", "clahe", "clahe_clip", "clahe_tile",
            "roi_crop", "roi_margin", "resize_mode"]


@pytest.mark.parametrize("kind", ["mammography", "ultrasound", "none"])
def test_default_spec_keys_exactly_as_before_the_dicom_settings(kind):
    from features.preprocess_spec import PreprocessSpec

    assert list(PreprocessSpec.for_modality(kind).to_dict()) == OLD_KEYS


def test_dicom_settings_enter_the_spec_dict_only_when_set():
    from features.preprocess_spec import PreprocessSpec

    spec = PreprocessSpec.for_modality("mammography", dicom_frame=np.int64(1), dicom_for_processing=True)
    assert spec.to_dict() == {**PreprocessSpec.for_modality("mammography").to_dict(),
                              "dicom_frame": 1, "dicom_for_processing": True}
    assert type(spec.dicom_frame) is int
    assert PreprocessSpec(dicom_frame="mean").to_dict()["dicom_frame"] == "mean"


def test_bad_dicom_settings_in_a_study_file_are_all_listed_at_once(tmp_path):
    from pipeline.config import validate
    from pipeline.errors import ConfigError

    prep = {"dicom_frame": "median", "dicom_for_processing": "yes", "clahe_clip": 0}
    with pytest.raises(ConfigError) as info:
        validate({"manifest": "m.csv", "modalities": {"mammography": {"preprocessing": prep}}}, tmp_path)
    assert info.value.problems == [
        "modalities.mammography.preprocessing.clahe_clip: must be > 0, got 0",
        "modalities.mammography.preprocessing.dicom_frame: must be null (single-frame DICOMs only), a frame "
        "index >= 0 or one of ['mean', 'max'], got 'median'",
        "modalities.mammography.preprocessing.dicom_for_processing: must be true or false, got 'yes'"]


def test_study_file_dicom_settings_reach_the_spec(tmp_path):
    from pipeline.config import validate

    prep = {"dicom_frame": 2, "dicom_for_processing": True}
    study = validate({"manifest": "m.csv", "modalities": {"mammography": {"preprocessing": prep}}}, tmp_path)
    spec = study.modalities["mammography"].preprocess
    assert (spec.dicom_frame, spec.dicom_for_processing) == (2, True)
    assert validate(study.to_dict(), tmp_path) == study


def test_load_preprocessed_takes_the_frame_from_the_spec_and_notes_for_processing(tmp_path, frames):
    from features.extraction import load_preprocessed
    from features.imageio import to_gray_uint8
    from features.preprocess_spec import PreprocessSpec

    path = save(dataset(frames, frames=len(frames), intent="FOR PROCESSING"), tmp_path / "raw_multi.dcm")
    with pytest.raises(ImageError, match="FOR PROCESSING"):
        load_preprocessed(path, None, PreprocessSpec(dicom_frame=1))
    with pytest.raises(ImageError, match="multi-frame"):
        load_preprocessed(path, None, PreprocessSpec(dicom_for_processing=True))
    gray, mask, notes = load_preprocessed(path, None, PreprocessSpec(dicom_frame=1, dicom_for_processing=True))
    np.testing.assert_array_equal(gray, to_gray_uint8(frames[1].astype(np.float32)))
    assert mask is None and notes == ["DICOM is FOR PROCESSING (a raw detector image), embedded as it is "
                                      "(dicom_for_processing: true)"]
