"""The extract stage's work: which embeddings are known, which to compute, checkpoints, fallback.

Per (modality, backbone) a target lists the content key of every image row. Known embeddings come
from the stage's committed file, its checkpoints (a killed or failed run) and other runs given as
caches; only missing keys are embedded. A target whose rows and keys are unchanged is carried into
the new record without being rewritten.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from features.backbones import HANDCRAFTED, WeightsChoice, build_embedder, default_input_size, random_seed_for
from features.backbones import resolve_weights, uses_mask
from features.errors import WeightsError
from features.extraction import ImageJob, run_extraction
from features.hashing import hash_json
from features.roi import RoiShape, is_roi_text
from features.store import EmbeddingTable, read_table, write_table
from pipeline.errors import ManifestError
from pipeline.fingerprint import library_versions
from pipeline.progress import progress_bar

log = logging.getLogger(__name__)
EMBEDDINGS = "embeddings"
DECODED_VERSION = 1


@dataclass
class Target:
    """One output file: a (modality, backbone) pair and what is known and missing for it."""

    modality: object
    name: str
    choice: WeightsChoice
    input_size: int
    fallback: bool = False
    rows: list = field(default_factory=list)      # [case_id, line, image, image sha, mask sha, mask]
    keys: list = field(default_factory=list)      # per image row, in manifest order
    done: dict = field(default_factory=dict)      # key -> embedding (cached or computed)
    computed: int = 0
    unchanged: bool = False
    spec: dict | None = None
    feature_names: list | None = None

    @property
    def label(self):
        return f"{self.modality.name}/{self.name}"

    @property
    def missing(self):
        return [k for k in self.keys if k not in self.done]

    @property
    def fields(self):
        return {"modality": self.modality.name, "backbone": self.name}


def _key(row, modality, target, flip_tta, mixed_precision):
    mask_sha = row[4] if (modality.preprocess.roi_crop or uses_mask(target.name)) else None
    key = {"image": row[3], "mask": mask_sha, "preprocess": modality.preprocess.to_dict(), "flip_tta": flip_tta,
           "extractor": target.name, "input_size": target.input_size, "weights": target.choice.identity}
    if mixed_precision:     # float16 on a GPU changes the numbers; absent by default so keys stay as they were
        key["mixed_precision"] = True
    return hash_json(key)


def _target_fingerprint(target):
    return hash_json({"stage": "extract", "version": 1, "modality": target.modality.name,
                      "backbone": target.name, "rows": [[r[0], k] for r, k in zip(target.rows, target.keys)]})


def random_fallback(name, seed):
    s = random_seed_for(name, seed)
    return WeightsChoice("random", f"random:seed={s}", seed=s)


class _Caches:
    """Known embeddings of a target: committed file, checkpoint, other runs (read-verified)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.others = [ctx.inputs.elsewhere(d) for d in ctx.options.get("cache_from", ())]

    def committed(self, target):
        if not self.ctx.inputs.has("extract:embeddings", **target.fields):
            return None
        return self.ctx.inputs.read("extract:embeddings", **target.fields)

    def checkpoint(self, target):
        return read_table(self.ctx.out.checkpoint_path(EMBEDDINGS, **target.fields))

    def elsewhere(self, target):
        for other in self.others:
            try:
                if other.has("extract:embeddings", **target.fields):
                    yield other.read("extract:embeddings", **target.fields)
            except Exception as exc:  # noqa: BLE001  (another run's cache is a bonus, never a failure)
                log.info("not reusing %s: %s", other.catalog.run_dir, exc)

    def load(self, target):
        target.done = {}
        if self.ctx.force:
            return
        final = self.committed(target)
        if final is not None and final.attrs.get("fingerprint") == _target_fingerprint(target):
            target.unchanged = True
        wanted = set(target.keys)
        for table in (final, self.checkpoint(target), *self.elsewhere(target)):
            if table is None:
                continue
            reused = {k: v for k, v in table.by_key().items() if k in wanted}
            if reused and target.spec is None:   # same extractor: keep its recorded spec
                target.spec = json.loads(table.attrs.get("extractor", "{}")) or None
                target.feature_names = table.feature_names
            target.done.update(reused)


def _plan(ctx, index):
    study, ex = ctx.study, ctx.study.extract
    before = (ctx.previous.summary.get("resolved", {}).get("weights", {}) if ctx.previous else {})
    caches = _Caches(ctx)
    targets = []
    for b in ex.backbones:
        choice = resolve_weights(b.name, b.weights, study.seed, b.params)
        fallback = (choice.kind == "imagenet" and choice.path is None and ex.allow_random_fallback
                    and not ctx.force and before.get(b.name, {}).get("fallback", False))
        size = b.input_size or default_input_size(b.name)
        for modality in study.modalities.values():
            t = Target(modality, b.name, random_fallback(b.name, study.seed) if fallback else choice, size,
                       fallback, rows=index[modality.name])
            _set_keys(t, ex)
            caches.load(t)
            targets.append(t)
    return targets, caches


def _set_keys(target, ex):
    target.keys = [_key(r, target.modality, target, ex.flip_tta, ex.mixed_precision) for r in target.rows]


def _params(ex, name):
    """The backbone's own params from the study (None where it has none)."""
    return next(b.params for b in ex.backbones if b.name == name)


def _build(ctx, targets, caches):
    """Load each needed extractor once; fall back to random weights only where the study allows."""
    ex, embedders = ctx.study.extract, {}
    for t in targets:
        if t.unchanged or not t.missing or t.name in embedders:
            continue
        try:
            embedders[t.name] = build_embedder(t.name, t.choice, t.input_size, ex.batch_size, ex.mixed_precision,
                                               _params(ex, t.name), **runtime_args(ctx.study))
        except WeightsError as exc:
            if not (t.choice.kind == "imagenet" and ex.allow_random_fallback):
                raise
            log.warning("=" * 72)
            log.warning("ImageNet weights for '%s' are not available: FALLING BACK TO SEEDED RANDOM "
                        "WEIGHTS. Embeddings are NOT ImageNet features; every artifact records this.", t.name)
            log.warning("%s", exc)
            log.warning("=" * 72)
            choice = random_fallback(t.name, ctx.study.seed)
            for other in (o for o in targets if o.name == t.name):
                other.choice, other.fallback, other.unchanged = choice, True, False
                _set_keys(other, ex)
                caches.load(other)
            embedders[t.name] = build_embedder(t.name, choice, t.input_size, ex.batch_size, ex.mixed_precision,
                                               _params(ex, t.name), **runtime_args(ctx.study))
    for t in targets:
        if t.name in embedders:
            t.spec = embedders[t.name].spec
            t.feature_names = getattr(embedders[t.name], "feature_names", None)
    return embedders


def _attrs(ctx, target):
    ex = ctx.study.extract
    return {"stage": "extract", "stage_version": 1, "study": ctx.study.name,
            "modality": target.modality.name, "backbone": target.name,
            "weights_requested": next(b.weights for b in ex.backbones if b.name == target.name),
            "weights": target.choice.kind, "weights_identity": target.choice.identity,
            "weights_fallback": target.fallback, "weights_sha256": (target.spec or {}).get("weights_sha256") or "",
            "input_size": target.input_size, "extractor": target.spec or {},
            "preprocessing": target.modality.preprocess.to_dict(), "flip_tta": ex.flip_tta,
            "fingerprint": _target_fingerprint(target), "versions": library_versions(),
            "n_images": len(target.rows)}


def _table(ctx, target):
    have = [i for i, k in enumerate(target.keys) if k in target.done]
    keys = [target.keys[i] for i in have]
    dim = len(next(iter(target.done.values()))) if target.done else 0
    emb = np.stack([target.done[k] for k in keys]) if keys else np.zeros((0, dim), np.float32)
    views = [target.rows[i][6] if len(target.rows[i]) > 6 else None for i in have]
    return EmbeddingTable([target.rows[i][0] for i in have], keys, emb, _attrs(ctx, target), target.feature_names,
                          views if any(views) else None)


def _save_checkpoints(ctx, targets):
    for t in targets:
        if t.done and not t.unchanged:
            table = _table(ctx, t)
            table.attrs["partial"] = True
            write_table(ctx.out.checkpoint_path(EMBEDDINGS, **t.fields), table)


class _Checkpointer:
    """Saves what is computed every few seconds, so a killed run loses little."""

    def __init__(self, ctx, targets):
        self.ctx, self.targets, self.last = ctx, targets, time.monotonic()

    def maybe_save(self):
        if time.monotonic() - self.last >= self.ctx.study.extract.checkpoint_seconds:
            _save_checkpoints(self.ctx, [t for t in self.targets if t.computed and t.missing])
            self.last = time.monotonic()


def _spec_without_build(target):
    if target.name == HANDCRAFTED:
        from features import handcrafted  # noqa: PLC0415

        target.feature_names = handcrafted.feature_names()
    return {"backbone": target.name, "weights": target.choice.kind,
            "weights_identity": target.choice.identity, "input_size": target.input_size}


def lesion_of(cell):
    """A row's lesion as extraction takes it: a mask file's path, an ROI drawn from geometry, or None."""
    if not cell:
        return None
    return RoiShape.from_text(cell) if is_roi_text(cell) else Path(cell)


def decode_key(row, modality, ex):
    """The decoded-image cache's key of an image row: its content, its lesion's, and how it is
    decoded and preprocessed (never which extractor: they all share it)."""
    return hash_json({"decoded": DECODED_VERSION, "image": row[3], "lesion": row[4],
                      "preprocess": modality.preprocess.to_dict(), "allow_blank": ex.allow_blank})


def decoded_cache(ctx):
    """The run's decoded-image cache (<run>/.cache/decoded), or None when extract.decode_cache is off."""
    from features.decoded import DecodedCache  # noqa: PLC0415

    return DecodedCache(ctx.study.run_dir / ".cache" / "decoded") if ctx.study.extract.decode_cache else None


def runtime_args(study):
    """``build_embedder``'s runtime and cache folder (<run>/.cache/openvino: converted models, used by
    ``extract.runtime: openvino`` only)."""
    return {"runtime": study.extract.runtime, "cache_dir": study.run_dir / ".cache" / "openvino"}


def _embed_modality(ctx, modality, targets, embedders, checkpoint, notes, decoded=None, client=None):
    ex = ctx.study.extract
    mine = {t.name: t for t in targets if t.modality is modality and not t.unchanged}
    rows = next(iter(mine.values())).rows if mine else []
    jobs = []
    for i, row in enumerate(rows):
        keys = {n: t.keys[i] for n, t in mine.items() if t.keys[i] not in t.done}
        if keys:
            jobs.append(ImageJob(row[0], Path(row[2]), lesion_of(row[5]), keys, decode_key(row, modality, ex)))

    def on_result(name, batch_jobs, emb):
        t = mine[name]
        for job, vector in zip(batch_jobs, emb):
            t.done[job.keys[name]] = vector
        t.computed += len(batch_jobs)
        checkpoint.maybe_save()

    if not jobs:
        return []
    needed = sorted({n for j in jobs for n in j.keys})
    log.info("%s: embedding %d image(s) with %s", modality.name, len(jobs), ", ".join(needed))
    with progress_bar(len(jobs), f"extract {modality.name}", "img", ctx.show_progress) as advance:
        if client is not None:
            from pipeline.cluster_extract import embed_on_cluster  # noqa: PLC0415

            builds = {n: _build_args(mine[n], ctx.study) for n in needed}
            failures, counts = embed_on_cluster(client, jobs, builds, modality.preprocess, on_result, ex, advance,
                                                notes.setdefault(modality.name, []),
                                                decoded.folder if decoded is not None else None)
            if decoded is not None:
                decoded.hits, decoded.misses = decoded.hits + counts["hits"], decoded.misses + counts["decoded"]
            return [(modality.name, f) for f in failures]
        return [(modality.name, f) for f in run_extraction(
            jobs, {n: embedders[n] for n in needed}, modality.preprocess, on_result, batch_size=ex.batch_size,
            workers=ex.workers, flip_tta=ex.flip_tta, progress=advance, allow_blank=ex.allow_blank,
            notes=notes.setdefault(modality.name, []), decoded=decoded)]


def _build_args(target, study):
    """What ``build_embedder`` takes after the name, for a worker to build the same extractor."""
    ex, runtime = study.extract, runtime_args(study)
    return (target.choice, target.input_size, ex.batch_size, ex.mixed_precision, _params(ex, target.name),
            runtime["runtime"], runtime["cache_dir"])


@contextlib.contextmanager
def _cluster(ctx):
    """extract.scheduler's Dask client (None for a local run), and its description for the record."""
    from pipeline.cluster import dask_client, describe, is_local  # noqa: PLC0415

    scheduler = ctx.study.extract.scheduler
    if is_local(scheduler):
        yield None, None
        return
    with dask_client(scheduler, "extract.scheduler") as client:
        yield client, describe(client)


def _resolved(targets):
    out = {}
    for t in targets:
        c = t.choice
        out[t.name] = {"kind": c.kind, "identity": c.identity, "path": str(c.path) if c.path else None,
                       "seed": c.seed, "fallback": t.fallback, "input_size": t.input_size,
                       "sha256": (t.spec or {}).get("weights_sha256")}
    return out


def embed_study(ctx, index):
    """Compute what is missing and stage every (modality, backbone) file; on unreadable images save
    everything computed as checkpoints and raise, listing each bad image with its manifest line."""
    targets, caches = _plan(ctx, index)
    embedders = _build(ctx, targets, caches)
    checkpoint = _Checkpointer(ctx, targets)
    failures, notes, decoded = [], {}, decoded_cache(ctx)
    with _cluster(ctx) as (client, cluster):
        for modality in ctx.study.modalities.values():
            failures += _embed_modality(ctx, modality, targets, embedders, checkpoint, notes, decoded, client)
    lines = {(m, r[0]): r[1] for m, rows in index.items() for r in rows}
    for t in targets:
        if t.spec is None:
            t.spec = _spec_without_build(t)
    if failures:
        _save_checkpoints(ctx, targets)
        raise ManifestError(
            f"{len(failures)} image(s) could not be used; everything else was embedded and saved:",
            [f"line {lines.get((m, f.case_id), '?')}, {m}: {f.path}: {f.reason}" for m, f in failures],
            hint="Fix or remove these images and run extract again: only they will be computed.")
    for t in targets:
        if t.unchanged:
            ctx.out.carry(EMBEDDINGS, **t.fields)
        else:
            write_table(ctx.out.path(EMBEDDINGS, **t.fields), _table(ctx, t))
    ctx.out.write_json("images", index)
    ctx.after_commit.append(ctx.out.drop_checkpoints)
    if decoded is not None:
        wanted = [decode_key(r, ctx.study.modalities[m], ctx.study.extract) for m, rows in index.items() for r in rows]
        ctx.after_commit.append(lambda: decoded.keep_only(wanted))
    summary = {"computed": {t.label: t.computed for t in targets if t.computed},
               "reused": {t.label: len(t.keys) - t.computed for t in targets if not t.unchanged},
               "unchanged": [t.label for t in targets if t.unchanged],
               "fallback": sorted({t.label for t in targets if t.fallback}),
               "notes": [f"line {lines.get((m, n.case_id), '?')}, {m}: {n.path}: {n.reason}"
                         for m, found in notes.items() for n in found],
               "resolved": {"weights": _resolved(targets)},
               **({"decoded": {"hits": decoded.hits, "decoded": decoded.misses}} if decoded is not None else {}),
               **({"cluster": cluster} if cluster else {})}
    _log(summary)
    return summary


def _log(summary):
    for label, n in summary["computed"].items():
        log.info("%s: %d computed, %d reused from cache", label, n, summary["reused"].get(label, 0))
    for label in summary["unchanged"]:
        log.info("%s: unchanged (fingerprint matches), nothing to do", label)
    for label in summary["fallback"]:
        log.warning("%s: made with SEEDED RANDOM weights (ImageNet weights unavailable)", label)
    if summary["notes"]:
        log.warning("%d image(s) embedded with a warning (listed in the extract record):\n  %s",
                    len(summary["notes"]), "\n  ".join(summary["notes"][:20]))
