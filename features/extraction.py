"""Batched extraction: decode and preprocess each image once, in worker threads, and feed every
extractor that still needs it, while the model runs on the previous batch.

Pure orchestration of arrays: no files are written here; results go to a callback.
"""

from __future__ import annotations

import collections
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from features.errors import ImageError
from features.imageio import read_gray, read_mask
from features.preprocess import preprocess
from features.roi import RoiShape

log = logging.getLogger(__name__)


@dataclass
class ImageJob:
    """One image of one modality and the extractors (with their cache keys) that need it."""

    case_id: str
    path: Path
    mask_path: Path | RoiShape | None = None     # a mask file, or a lesion drawn from circle/box geometry
    keys: dict = field(default_factory=dict)  # extractor name -> content key
    decode_key: str | None = None              # the decoded-image cache's key (content + preprocessing)


@dataclass
class ExtractionFailure:
    case_id: str
    path: str
    reason: str


#: Below this side an image carries no lesion detail a CNN can see (a 1x1 export, a thumbnail).
MIN_SIDE = 32
#: Grey-level standard deviation (0-255) under which an image is blank: all black, all white, one value.
BLANK_STD = 1.0


def image_warnings(gray, path):
    """Why an image cannot be a real study image (too small, blank), as messages; [] when fine."""
    out = []
    if min(gray.shape[:2]) < MIN_SIDE:
        out.append(f"image is {gray.shape[1]}x{gray.shape[0]} px, smaller than {MIN_SIDE} px on a side")
    if float(gray.std()) < BLANK_STD:
        out.append(f"image is blank (every pixel about {int(round(float(gray.mean())))})")
    return out


def load_preprocessed(path, mask_path, spec, allow_blank=False):
    """(gray, mask, notes): one image decoded, checked and preprocessed as every extractor sees it.

    A too-small or blank image is an ImageError unless ``allow_blank`` (then a note). A mask of
    another size than its image, or an empty one, is an ImageError when the image is cropped to
    it (``spec.roi_crop``); otherwise the mask is resized (or ignored, when empty) and noted.
    """
    header_notes = []  # what the file itself says worth recording (a FOR PROCESSING DICOM)
    gray = read_gray(path, dicom_frame=spec.dicom_frame, dicom_for_processing=spec.dicom_for_processing,
                     notes=header_notes)
    notes = image_warnings(gray, path)
    if notes and not allow_blank:
        raise ImageError(path, "; ".join(notes) + " (set extract.allow_blank: true to embed it anyway)")
    mask = None
    if isinstance(mask_path, RoiShape):
        mask = mask_path.mask(gray.shape[:2])
        if not mask.any():
            problem = (f"its ROI ({mask_path.text()[len('roi:'):]}) lies outside the {gray.shape[1]}x{gray.shape[0]} "
                       "px image: check the ROI's frame (the original image size) and origin")
            if spec.roi_crop:
                raise ImageError(path, problem)
            notes.append(problem)
            mask = None
    elif mask_path is not None:
        mask = read_mask(mask_path)
        problems = []
        if mask.shape != gray.shape[:2]:
            problems.append(f"its mask {Path(mask_path).name} is {mask.shape[1]}x{mask.shape[0]} px, the image "
                            f"{gray.shape[1]}x{gray.shape[0]} px")
        if not mask.any():
            problems.append(f"its mask {Path(mask_path).name} is empty")
        if problems and spec.roi_crop:
            raise ImageError(path, "; ".join(problems) + ": a mask to crop to must be the image's own size "
                                                         "and mark the lesion")
        notes += problems
        if not mask.any():
            mask = None
        elif mask.shape != gray.shape[:2]:
            mask = read_mask(mask_path, gray.shape)
    gray, mask = preprocess(gray, spec, mask)
    return gray, mask, header_notes + notes


def prepare_views(extractor, gray, mask, resize_mode, flip_tta):
    """The extractor's prepared input(s) for one preprocessed image: itself, and its mirror with
    flip test-time augmentation (their embeddings are averaged)."""
    views = [(gray, mask)]
    if flip_tta:
        views.append((np.ascontiguousarray(gray[:, ::-1]),
                      None if mask is None else np.ascontiguousarray(mask[:, ::-1])))
    return [extractor.prepare(g, m, resize_mode) for g, m in views]


def embed_prepared(extractor, prepared):
    """Embeddings of images given as lists of prepared views (as ``prepare_views`` makes them),
    embedded together in the extractor's batches and averaged per image, as extraction does."""
    if not prepared:
        return np.zeros((0, extractor.dim), np.float32)
    out = extractor.embed(np.stack([v for views in prepared for v in views]))
    sizes = np.cumsum([0] + [len(views) for views in prepared])
    return np.stack([out[a:b].mean(axis=0) for a, b in zip(sizes[:-1], sizes[1:])]).astype(np.float32)


def _decoded(job, spec, allow_blank, cache):
    """The preprocessed image from the decoded-image cache, else decoded now (and cached)."""
    found = cache.get(job.decode_key) if cache is not None and job.decode_key else None
    if found is not None:
        return found
    gray, mask, notes = load_preprocessed(job.path, job.mask_path, spec, allow_blank)
    if cache is not None and job.decode_key:
        cache.put(job.decode_key, gray, mask, notes)
    return gray, mask, notes


def _load(job, spec, extractors, flip_tta, allow_blank, cache=None):
    """Decode + check + preprocess once, then each extractor's own preparation (worker thread)."""
    try:
        gray, mask, notes = _decoded(job, spec, allow_blank, cache)
        return {name: prepare_views(extractors[name], gray, mask, spec.resize_mode, flip_tta)
                for name in job.keys}, None, notes
    except ImageError as exc:
        return None, exc.reason, []
    except Exception as exc:  # an unreadable image must not lose the rest of the run
        log.debug("failed on %s", job.path, exc_info=True)
        return None, f"{type(exc).__name__}: {exc}", []


class _Batcher:
    """Accumulates prepared views for one extractor and embeds them a full batch at a time."""

    def __init__(self, extractor, batch_size, on_result):
        self.extractor, self.batch_size, self.on_result = extractor, batch_size, on_result
        self.items = []  # (job, views)
        self.n_views = 0

    def add(self, job, views):
        self.items.append((job, views))
        self.n_views += len(views)
        if self.n_views >= self.batch_size:
            self.flush()

    def flush(self):
        if not self.items:
            return
        stacked = np.stack([v for _, views in self.items for v in views])
        out = self.extractor.embed(stacked)
        rows, start = [], 0
        for _, views in self.items:
            rows.append(out[start:start + len(views)].mean(axis=0))
            start += len(views)
        jobs = [job for job, _ in self.items]
        self.items, self.n_views = [], 0
        self.on_result(self.extractor.name, jobs, np.stack(rows).astype(np.float32))


def run_extraction(jobs, extractors, spec, on_result, batch_size=16, workers=2, flip_tta=False,
                   progress=None, allow_blank=False, notes=None, decoded=None):
    """Embed ``jobs`` with ``extractors`` (name -> embedder); return the failures.

    ``on_result(name, jobs, embeddings)`` is called after every batch, so the caller can save
    progress. ``progress`` is an optional callable advanced by one per image. ``notes``, a list,
    receives an ExtractionFailure-like record per image that was embedded with a warning.
    ``decoded``, a ``DecodedCache``, keeps each preprocessed image for the next extractor to come.
    """
    batchers = {name: _Batcher(ex, batch_size, on_result) for name, ex in extractors.items()}
    failures = []
    window = max(2 * batch_size, 4 * workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending = collections.deque()
        queue = iter(jobs)

        def refill():
            while len(pending) < window:
                job = next(queue, None)
                if job is None:
                    return
                pending.append((job, pool.submit(_load, job, spec, extractors, flip_tta, allow_blank, decoded)))

        refill()
        while pending:
            job, future = pending.popleft()
            prepared, reason, warned = future.result()
            refill()
            if warned and notes is not None:
                notes.append(ExtractionFailure(job.case_id, str(job.path), "; ".join(warned)))
            if reason is not None:
                failures.append(ExtractionFailure(job.case_id, str(job.path), reason))
            else:
                for name, views in prepared.items():
                    batchers[name].add(job, views)
            if progress:
                progress(1)
    for batcher in batchers.values():
        batcher.flush()
    return failures
