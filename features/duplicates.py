"""Exact and near-duplicate images: the same lesion saved twice (re-cropped, re-scaled, the next
frame) must share a fold, or cross-validation scores an image against its own copy.

Near means: Pearson correlation of 64 x 64 z-scored thumbnails at or above a threshold (0.97 is
what the shared BUSI copy's README uses; its visual check found re-crops and consecutive frames).
Pure array code: gray images in, groups out.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

THUMBNAIL = 64
NEAR_CORRELATION = 0.97


def pixel_digest(gray):
    """SHA-256 of decoded gray pixels with a shape prefix: equal for re-encoded copies of an image."""
    gray = np.ascontiguousarray(gray)
    digest = hashlib.sha256(f"{gray.shape[0]}x{gray.shape[1]}:".encode())
    digest.update(gray.tobytes())
    return digest.hexdigest()


def thumbnail_signature(gray, size=THUMBNAIL):
    """A z-scored size x size thumbnail, flattened, scaled so that dot products are correlations."""
    small = cv2.resize(np.asarray(gray), (size, size), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    small -= small.mean()
    norm = np.linalg.norm(small)
    return (small / norm if norm > 0 else small).astype(np.float32)


def duplicate_pairs(digests, signatures, threshold=NEAR_CORRELATION):
    """(i, j, kind, correlation) for every pair of images that are the same pixels ('exact') or
    whose thumbnails correlate at ``threshold`` or more ('near'), i < j."""
    n = len(digests)
    if n < 2:
        return []
    sig = np.asarray(signatures, dtype=np.float32)
    corr = sig @ sig.T
    _, codes = np.unique(np.asarray(digests, dtype=object).astype(str), return_inverse=True)
    codes = np.where(np.asarray(digests, dtype=object) == "", -1 - np.arange(n), codes)  # unknown: unique
    exact = codes[:, None] == codes[None, :]
    i, j = np.nonzero(np.triu(exact | (corr >= threshold), k=1))
    return [(int(a), int(b), "exact" if exact[a, b] else "near", float(corr[a, b])) for a, b in zip(i, j)]


def duplicate_groups(n, pairs):
    """Group index per image (-1 where it has no duplicate), joining pairs transitively; groups are
    numbered in order of their first image."""
    if not pairs:
        return np.full(n, -1)
    rows = [p[0] for p in pairs]
    cols = [p[1] for p in pairs]
    graph = coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    out = np.full(n, -1)
    names = {}
    for i, label in enumerate(labels):
        if sizes[label] > 1:
            out[i] = names.setdefault(label, len(names))
    return out
