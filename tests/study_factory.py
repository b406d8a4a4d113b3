"""Tiny synthetic studies on disk for tests: images, manifest.csv and study.yaml."""

import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml


def write_image(path, seed, size=64, kind="blob"):
    """A small grayscale PNG whose content depends on the seed."""
    rng = np.random.default_rng(seed)
    img = (rng.random((size, size)) * 60).astype(np.uint8)
    centre = tuple(int(c) for c in rng.integers(size // 4, 3 * size // 4, 2))
    cv2.circle(img, centre, int(rng.integers(size // 8, size // 4)), 200, -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def make_study(root, n=10, modalities=("ultrasound",), backbones=("handcrafted",), extra=None,
               clinical=True):
    """A tiny study on disk: images, manifest.csv and study.yaml; returns the study file path."""
    root = Path(root)
    rows = []
    for i in range(n):
        row = {"case_id": f"c{i:03d}", "patient_id": f"p{i // 2:03d}",
               "label": "malignant" if i % 2 else "benign"}
        for m in modalities:
            rel = f"images/{m}/c{i:03d}.png"
            write_image(root / rel, seed=zlib.crc32(m.encode()) % 997 + i)
            row[f"{m}_path"] = rel
        if clinical:
            row["age"] = str(40 + i)
            row["history"] = "yes" if i % 3 == 0 else "no"
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    study = {"study": "tiny", "manifest": "manifest.csv", "output": "run", "seed": 0,
             "modalities": {m: {"path_column": f"{m}_path"} for m in modalities},
             "clinical": {"age": "numeric", "history": "categorical"} if clinical else {},
             "extract": {"backbones": list(backbones), "weights": "random", "input_size": 32,
                         "batch_size": 4, "workers": 2}}
    if extra:
        for key, value in extra.items():
            study.setdefault(key, {}).update(value) if isinstance(value, dict) else study.update({key: value})
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def make_dicom(path, pixels, photometric="MONOCHROME1", window=(1000, 1400), with_pixels=True):
    """A minimal single-frame 12-bit mammogram-like DICOM file written with pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        SecondaryCaptureImageStorage,
        generate_uid,
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if with_pixels:
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def run(study, *stages, **kwargs):
    """Run stages on a study quietly; {stage: StageOutcome}."""
    from pipeline.runner import run_stages

    kwargs.setdefault("show_progress", False)
    return {o.stage: o for o in run_stages(list(stages), study, **kwargs)}


def catalog(study_or_run_dir):
    """The committed artifacts of a run (a study's run folder, or a folder)."""
    from pipeline.catalog import Catalog

    return Catalog(getattr(study_or_run_dir, "run_dir", study_or_run_dir))


def report_page(study, **overrides):
    """Run the report stage with some `report.` settings; the page's path."""
    from pathlib import Path as _Path

    if overrides:
        study = study.with_overrides([(["report", k], v) for k, v in overrides.items()])
    return _Path(run(study, "report")["report"].summary["page"])
