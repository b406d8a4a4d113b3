"""Extraction on a Dask cluster: the images of one modality are sharded across the workers, each
worker embeds its shards (features.shards) and the client receives the embeddings, so the HDF5
cache, its checkpoints and the record are written here exactly as in a local run.

A worker lost mid-shard loses only that shard: Dask runs it again on another worker. A killed
client resumes from its checkpoints as a local run does. Images must be readable at the same
paths on every worker (a shared file system), as they are on one machine.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
#: Called once the first shard's results arrived (tests use it to kill a worker mid-extract).
after_first_shard = None


def shard_size(batch_size, n_jobs, n_workers):
    """Shards of a few batches: enough work per task to hide its overhead, enough tasks to keep
    every worker busy and lose little when one dies."""
    per_worker = max(1, -(-n_jobs // max(1, n_workers * 4)))
    return max(batch_size, min(4 * batch_size, per_worker))


def embed_on_cluster(client, jobs, builds, spec, on_result, ex, progress, notes, decoded_dir):
    """Run ``jobs`` as shards on the cluster; ``on_result(name, jobs, emb)`` for every batch that
    comes back. Returns (failures, decoded-cache counts summed over the workers)."""
    from distributed import as_completed  # noqa: PLC0415

    from features.shards import embed_shard  # noqa: PLC0415

    n_workers = len(client.scheduler_info().get("workers", {})) or 1
    size = shard_size(ex.batch_size, len(jobs), n_workers)
    shards = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    futures = {client.submit(embed_shard, shard, builds, spec, ex.batch_size, ex.flip_tta, ex.allow_blank,
                             decoded_dir, pure=False): shard for shard in shards}
    failures, counts, first = [], {"hits": 0, "decoded": 0}, True
    for future in as_completed(futures):
        shard = futures[future]
        results, failed, noted, done = future.result()
        for name, positions, emb in results:
            on_result(name, [shard[i] for i in positions], emb)
        failures += failed
        notes += noted
        for key, value in done.items():
            counts[key] += value
        if progress:
            progress(len(shard))
        if first and after_first_shard is not None:
            after_first_shard(client)
        first = False
    return failures, counts
