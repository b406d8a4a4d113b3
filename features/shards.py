"""One shard of images embedded on a cluster worker: decode, preprocess and embed in batches there,
and send back the embeddings (the client writes the cache, as a local run does).

A worker builds each extractor once (``build_embedder`` keeps models per process) and reuses it for
every shard it is given. A shard is a pure function of its images and settings, so a shard lost
with its worker is simply run again elsewhere, with the same numbers.
"""

from __future__ import annotations

from features.extraction import run_extraction


def embed_shard(jobs, builds, spec, batch_size, flip_tta, allow_blank, decoded_dir=None):
    """Embed ``jobs`` with the extractors ``builds`` describes ({name: ``build_embedder``'s arguments
    after the name: choice, input size, batch size, mixed precision, params, runtime, runtime cache
    folder}); return (results, failures, notes, counts) where results are
    [(name, [job index in the shard], embeddings)] in batches as they were made, and counts holds
    the decoded-image cache's hits and decodes on this worker."""
    import numpy as np  # noqa: PLC0415

    from features.backbones import build_embedder  # noqa: PLC0415

    extractors = {name: build_embedder(name, *args) for name, args in builds.items()}
    index = {id(job): i for i, job in enumerate(jobs)}
    results, notes = [], []

    def collect(name, batch_jobs, emb):
        results.append((name, [index[id(j)] for j in batch_jobs], np.asarray(emb, np.float32)))

    decoded = None
    if decoded_dir is not None:
        from features.decoded import DecodedCache  # noqa: PLC0415

        decoded = DecodedCache(decoded_dir)
    failures = run_extraction(jobs, extractors, spec, collect, batch_size=batch_size, workers=1, flip_tta=flip_tta,
                              allow_blank=allow_blank, notes=notes, decoded=decoded)
    counts = {"hits": decoded.hits, "decoded": decoded.misses} if decoded is not None else {}
    return results, failures, notes, counts
