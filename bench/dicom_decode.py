"""Decode speed of every compressed DICOM transfer syntax we support, per installed pydicom plugin.

    python bench/dicom_decode.py [--height 3000] [--width 2000] [--repeat 3]

Makes one large image from a real Mini-DDSM film in ../shared/data (upscaled; 16 bits stored for
the lossless syntaxes and JPEG 2000, 12 for JPEG extended, 8 for JPEG baseline), encodes it in each
syntax (pydicom's own encoders where it has one, else imagecodecs, else GDCM, whichever is
installed), then decodes it with every pydicom decoding plugin that is installed for that syntax.
Prints, per syntax and plugin: best-of-N decode time (file bytes to numpy array), compressed size,
and whether the pixels came back exactly (lossless) or their PSNR (lossy).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "mini_ddsm_subset"

# (pydicom UID name, bits stored, lossy encoder options or None for lossless)
SYNTAXES = (
    ("JPEGBaseline8Bit", 8, {"quality": 90}),
    ("JPEGExtended12Bit", 12, {"quality": 90}),
    ("JPEGLossless", 16, None),
    ("JPEGLosslessSV1", 16, None),
    ("JPEGLSLossless", 16, None),
    ("JPEGLSNearLossless", 16, {"jls_error": 3}),
    ("JPEG2000Lossless", 16, None),
    ("JPEG2000", 16, {"j2k_psnr": [60]}),
    ("RLELossless", 16, None),
)


def source_image(height, width):
    import cv2

    film = cv2.imread(str(sorted((SHARED / "images").glob("*.png"))[0]), cv2.IMREAD_GRAYSCALE)
    big = cv2.resize(film.astype(np.float32) * 257.0, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.rint(big), 0, 65535).astype(np.uint16)


def dataset(pixels, bits):
    """An uncompressed single-frame MONOCHROME2 dataset of ``pixels`` reduced to ``bits`` bits."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    values = (pixels >> (16 - bits)).astype(np.uint8 if bits == 8 else np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality = "MG"
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = values.itemsize * 8, bits, bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = values.tobytes()
    return ds, values


def encode(ds, values, name, options):
    """``ds`` compressed in syntax ``name``, with the first encoder that is installed; None if none."""
    import pydicom.uid
    from pydicom.pixels import get_encoder

    uid = getattr(pydicom.uid, name)
    try:
        if get_encoder(uid).is_available:
            ds.compress(uid, values, **(options or {}))
            return ds, "pydicom"
    except NotImplementedError:  # no pydicom encoder exists for this syntax
        pass
    # imagecodecs first: GDCM writes 12-bit JPEG Extended with a 16-bit frame header no decoder reads.
    for how, fn in (("imagecodecs", _imagecodecs_encode), ("gdcm", _gdcm_encode)):
        try:
            return fn(ds, values, name, options), how
        except ImportError:
            continue
    return None, None


def _gdcm_encode(ds, values, name, options):
    import tempfile

    import gdcm
    import pydicom

    gdcm_names = {"JPEGBaseline8Bit": "JPEGBaselineProcess1", "JPEGExtended12Bit": "JPEGExtendedProcess2_4",
                  "JPEGLossless": "JPEGLosslessProcess14", "JPEGLosslessSV1": "JPEGLosslessProcess14_1"}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "src.dcm", Path(tmp) / "dst.dcm"
        ds.save_as(src, enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(str(src))
        if not reader.Read():
            raise RuntimeError("GDCM could not read the uncompressed source")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, gdcm_names[name])))
        if options:
            codec = gdcm.JPEGCodec()
            codec.SetLossless(False)
            codec.SetQuality(options["quality"])
            change.SetUserCodec(codec)
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise RuntimeError(f"GDCM could not encode {name}")
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(dst))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise RuntimeError("GDCM could not write")
        return pydicom.dcmread(dst)


def _imagecodecs_encode(ds, values, name, options):
    import imagecodecs
    import pydicom.uid
    from pydicom.encaps import encapsulate

    bits = int(ds.BitsStored)
    if name in ("JPEGLossless", "JPEGLosslessSV1"):
        # Process 14 with predictor 1 is SV1; any other predictor (here 6) is plain process 14.
        frame = imagecodecs.jpeg8_encode(values, lossless=True, predictor=1 if name.endswith("SV1") else 6,
                                         bitspersample=bits)
    else:
        frame = imagecodecs.jpeg8_encode(values, level=options["quality"], bitspersample=bits)
    ds.file_meta.TransferSyntaxUID = getattr(pydicom.uid, name)
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def decode_plugins(uid):
    from pydicom.pixels import get_decoder

    decoder = get_decoder(uid)
    return [name for name in decoder._available]  # noqa: SLF001  (pydicom has no public list)


def psnr(a, b, peak):
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    import pydicom
    import pydicom.uid
    from pydicom.pixels import pixel_array

    pixels = source_image(args.height, args.width)
    print(f"{args.width} x {args.height} px from {SHARED.name}; pydicom {pydicom.__version__}; best of {args.repeat}")
    print(f"{'syntax':<20} {'encoder':<12} {'MB':>6} {'plugin':<10} {'decode s':>9} {'result':>12}")
    for name, bits, options in SYNTAXES:
        ds, values = dataset(pixels, bits)
        encoded, how = encode(ds, values, name, options)
        if encoded is None:
            print(f"{name:<20} {'(none)':<12} no encoder installed (GDCM or imagecodecs) to make a test file")
            continue
        buffer = io.BytesIO()
        encoded.save_as(buffer, enforce_file_format=True)
        blob = buffer.getvalue()
        plugins = decode_plugins(getattr(pydicom.uid, name))
        if not plugins:
            print(f"{name:<20} {how:<12} {len(blob) / 1e6:6.1f} no decoding plugin installed")
        for plugin in plugins:
            best, out = float("inf"), None
            try:
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    out = pixel_array(io.BytesIO(blob), decoding_plugin=plugin)
                    best = min(best, time.perf_counter() - start)
            except Exception as exc:  # a plugin that is installed but cannot do this file (Pillow, 12-bit)
                why = str(exc).splitlines()[-1].strip()
                print(f"{name:<20} {how:<12} {len(blob) / 1e6:6.1f} {plugin:<10} failed: {why}")
                continue
            if options is None:
                result = "exact" if np.array_equal(out, values) else "DIFFERENT"
            else:
                result = f"{psnr(out, values, 2**bits - 1):.1f} dB"
            print(f"{name:<20} {how:<12} {len(blob) / 1e6:6.1f} {plugin:<10} {best:9.3f} {result:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
