"""The `extract` stage: embed every image of every modality with every backbone, cached in HDF5.

Reads: the manifest and the images (and masks) it names.
Writes: <run>/features/<modality>/<backbone>.h5 (and .partial.h5 checkpoints while running).
Config: modalities, extract, seed.
Each embedding is keyed by image content + mask + preprocessing + extractor + weights, so an
unchanged image is never embedded twice, and a file whose key list is unchanged is not touched.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from features.backbones import (HANDCRAFTED, WeightsChoice, build_embedder, default_input_size,
                                random_seed_for, resolve_weights)
from features.errors import WeightsError
from features.extraction import ImageJob, run_extraction
from features.store import EmbeddingTable, read_table, remove_stale_temporaries, write_table
from pipeline import artifacts
from pipeline.errors import ManifestError
from pipeline.fingerprint import hash_files, hash_json, library_versions
from pipeline.progress import progress_bar

log = logging.getLogger(__name__)
STAGE_VERSION = 1


@dataclass
class Target:
    """One output file: a (modality, backbone) pair and what is known and missing for it."""

    modality: object
    name: str
    choice: WeightsChoice
    input_size: int
    fallback: bool = False
    keys: list = field(default_factory=list)  # per image row, in manifest order
    done: dict = field(default_factory=dict)  # key -> embedding (cached or computed)
    computed: int = 0
    skipped: bool = False
    spec: dict | None = None
    feature_names: list | None = None
    shas: dict = field(default_factory=dict)  # file path -> content hash

    @property
    def missing(self):
        return [k for k in self.keys if k not in self.done]


@dataclass
class ExtractReport:
    """What a run did per (modality, backbone): for logs, tests and the benchmark."""

    computed: dict = field(default_factory=dict)
    reused: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    files: list = field(default_factory=list)
    fallback: list = field(default_factory=list)

    @property
    def total_computed(self):
        return sum(self.computed.values())


def _rows(manifest, modality):
    """(case_id, image path, mask path or None, line number) for rows with an image."""
    frame = manifest.frame
    out = []
    for i, (case_id, cell) in enumerate(zip(frame["case_id"], frame[modality.path_column])):
        if cell == "":
            continue
        mask = frame[modality.mask_column].iloc[i] if modality.mask_column else ""
        out.append((case_id, manifest.resolve(cell), manifest.resolve(mask) if mask else None, i + 2))
    return out


def _key(image_sha, mask_sha, modality, target, flip_tta):
    if not (modality.preprocess.roi_crop or target.name == HANDCRAFTED):
        mask_sha = None  # the mask changes nothing else: don't recompute CNNs when only masks change
    return hash_json({"image": image_sha, "mask": mask_sha, "preprocess": modality.preprocess.to_dict(),
                      "flip_tta": flip_tta, "extractor": target.name, "input_size": target.input_size,
                      "weights": target.choice.identity})


def _previous_fallback(run_dir, study, name):
    """Reuse an earlier run's decision to fall back to random weights (no network needed)."""
    for modality in study.modalities:
        old = read_table(artifacts.features_file(run_dir, modality, name))
        if old is not None and old.attrs.get("weights_fallback"):
            return True
    return False


def _random_fallback(name, seed):
    s = random_seed_for(name, seed)
    return WeightsChoice("random", f"random:seed={s}", seed=s)


def _fingerprint(target, case_ids):
    return hash_json({"stage": "extract", "version": STAGE_VERSION, "modality": target.modality.name,
                      "backbone": target.name, "rows": list(zip(case_ids, target.keys))})


def _attrs(study, target, case_ids):
    ex = study.extract
    return {"stage": "extract", "stage_version": STAGE_VERSION, "study": study.config["study"],
            "modality": target.modality.name, "backbone": target.name,
            "weights_requested": next(b.weights for b in study.backbones if b.name == target.name),
            "weights": target.choice.kind, "weights_identity": target.choice.identity,
            "weights_fallback": target.fallback,
            "weights_sha256": (target.spec or {}).get("weights_sha256") or "",
            "input_size": target.input_size, "extractor": target.spec or {},
            "preprocessing": target.modality.preprocess.to_dict(), "flip_tta": ex["flip_tta"],
            "fingerprint": _fingerprint(target, case_ids), "versions": library_versions(),
            "n_images": len(case_ids)}


class _Checkpointer:
    """Saves partial tables every few seconds so a killed run loses little."""

    def __init__(self, study, every):
        self.study, self.every, self.last = study, every, time.monotonic()

    def maybe_save(self, targets, rows_by_modality):
        if time.monotonic() - self.last < self.every:
            return
        for t in targets:
            if t.computed and t.missing:
                _write(self.study, t, rows_by_modality[t.modality.name], partial=True)
        self.last = time.monotonic()


def _write(study, target, rows, partial=False):
    have = [i for i, k in enumerate(target.keys) if k in target.done]
    case_ids = [rows[i][0] for i in have]
    keys = [target.keys[i] for i in have]
    dim = len(next(iter(target.done.values()))) if target.done else 0
    emb = np.stack([target.done[k] for k in keys]) if keys else np.zeros((0, dim), np.float32)
    attrs = _attrs(study, target, [r[0] for r in rows])
    if partial:
        attrs["partial"] = True
    path = (artifacts.partial_features_file if partial else artifacts.features_file)(
        study.run_dir, target.modality.name, target.name)
    write_table(path, EmbeddingTable(case_ids, keys, emb, attrs, target.feature_names))
    return path


def _plan(study, manifest, force, cache_dirs=()):
    """Resolve weights, hash inputs, load caches; return targets and rows per modality."""
    ex = study.extract
    choices = {}
    for b in study.backbones:
        choice = resolve_weights(b.name, b.weights, study.seed)
        fallback = (choice.kind == "imagenet" and choice.path is None and ex["allow_random_fallback"]
                    and not force and _previous_fallback(study.run_dir, study, b.name))
        choices[b.name] = (_random_fallback(b.name, study.seed) if fallback else choice, fallback,
                           b.input_size or default_input_size(b.name))
    rows_by_modality, targets = {}, []
    for modality in study.modalities.values():
        rows = _rows(manifest, modality)
        rows_by_modality[modality.name] = rows
        remove_stale_temporaries(artifacts.features_dir(study.run_dir, modality.name))
        shas = hash_files([r[1] for r in rows] + [r[2] for r in rows if r[2]])
        for name, (choice, fallback, size) in choices.items():
            t = Target(modality, name, choice, size, fallback)
            _set_keys(t, rows, shas, ex["flip_tta"])
            _load_cache(study, t, rows, force, cache_dirs)
            targets.append(t)
    return targets, rows_by_modality


def _set_keys(target, rows, shas, flip_tta):
    target.keys = [_key(shas[str(p)], shas[str(m)] if m else None, target.modality, target, flip_tta)
                   for _, p, m, _ in rows]
    target.shas = shas


def _load_cache(study, target, rows, force, cache_dirs=()):
    target.done = {}
    if force:
        return
    final = read_table(artifacts.features_file(study.run_dir, target.modality.name, target.name))
    if final is not None and final.attrs.get("fingerprint") == _fingerprint(target, [r[0] for r in rows]):
        target.skipped = True
    partial = read_table(artifacts.partial_features_file(study.run_dir, target.modality.name, target.name))
    others = [read_table(artifacts.features_file(d, target.modality.name, target.name)) for d in cache_dirs]
    wanted = set(target.keys)
    for table in (final, partial, *others):
        if table is None:
            continue
        reused = {k: v for k, v in table.by_key().items() if k in wanted}
        if reused and target.spec is None:  # same extractor: keep its recorded spec
            target.spec = json.loads(table.attrs.get("extractor", "{}")) or None
            target.feature_names = table.feature_names
        target.done.update(reused)


def _build(study, targets, rows_by_modality):
    """Load each needed extractor once; fall back to random weights only where the study allows."""
    ex = study.extract
    embedders = {}
    for t in targets:
        if t.skipped or not t.missing or t.name in embedders:
            continue
        try:
            embedders[t.name] = build_embedder(t.name, t.choice, t.input_size, ex["batch_size"],
                                               ex["mixed_precision"])
        except WeightsError as exc:
            if not (t.choice.kind == "imagenet" and ex["allow_random_fallback"]):
                raise
            log.warning("=" * 72)
            log.warning("ImageNet weights for '%s' are not available: FALLING BACK TO SEEDED RANDOM "
                        "WEIGHTS. Embeddings are NOT ImageNet features; every artifact records this.", t.name)
            log.warning("%s", exc)
            log.warning("=" * 72)
            choice = _random_fallback(t.name, study.seed)
            for other in targets:
                if other.name == t.name:
                    other.choice, other.fallback = choice, True
                    rows = rows_by_modality[other.modality.name]
                    _set_keys(other, rows, other.shas, ex["flip_tta"])
                    _load_cache(study, other, rows, force=False)
            embedders[t.name] = build_embedder(t.name, choice, t.input_size, ex["batch_size"],
                                               ex["mixed_precision"])
    for t in targets:
        if t.name in embedders:
            t.spec = embedders[t.name].spec
            t.feature_names = getattr(embedders[t.name], "feature_names", None)
    return embedders


def _spec_without_build(target):
    if target.name == HANDCRAFTED:
        from features import handcrafted  # noqa: PLC0415

        target.feature_names = handcrafted.feature_names()
    return {"backbone": target.name, "weights": target.choice.kind,
            "weights_identity": target.choice.identity, "input_size": target.input_size}


def run_extract(study, manifest, force=False, show_progress=True, cache_dirs=()):
    """Embed what is missing, save every (modality, backbone) file; raise on unreadable images.

    ``cache_dirs`` are other runs whose embeddings may be reused (predict reuses its training run's).
    """
    ex = study.extract
    targets, rows_by_modality = _plan(study, manifest, force, cache_dirs)
    embedders = _build(study, targets, rows_by_modality)
    report = ExtractReport()
    checkpoint = _Checkpointer(study, ex["checkpoint_seconds"])
    failures = []
    for modality in study.modalities.values():
        rows = rows_by_modality[modality.name]
        mine = [t for t in targets if t.modality is modality and not t.skipped]
        jobs = []
        for i, (case_id, path, mask, _) in enumerate(rows):
            keys = {t.name: t.keys[i] for t in mine if t.keys[i] not in t.done}
            if keys:
                jobs.append(ImageJob(case_id, path, mask, keys))
        by_name = {t.name: t for t in mine}

        def on_result(name, batch_jobs, emb, by_name=by_name):
            t = by_name[name]
            for job, row in zip(batch_jobs, emb):
                t.done[job.keys[name]] = row
            t.computed += len(batch_jobs)
            checkpoint.maybe_save(targets, rows_by_modality)

        if jobs:
            needed = {n for j in jobs for n in j.keys}
            log.info("%s: embedding %d image(s) with %s", modality.name, len(jobs), ", ".join(sorted(needed)))
            with progress_bar(len(jobs), f"extract {modality.name}", "img", show_progress) as advance:
                failures += [(modality.name, f) for f in run_extraction(
                    jobs, {n: embedders[n] for n in needed}, modality.preprocess, on_result,
                    batch_size=ex["batch_size"], workers=ex["workers"], flip_tta=ex["flip_tta"],
                    progress=advance)]
        for t in mine:
            label = f"{modality.name}/{t.name}"
            report.computed[label] = t.computed
            report.reused[label] = len(t.keys) - t.computed - len(t.missing)
            if t.spec is None:
                t.spec = _spec_without_build(t)
            if t.fallback:
                report.fallback.append(label)
            if t.missing:
                if t.done:
                    _write(study, t, rows, partial=True)
                continue
            report.files.append(_write(study, t, rows))
            artifacts.partial_features_file(study.run_dir, modality.name, t.name).unlink(missing_ok=True)
    for t in targets:
        if t.skipped:
            report.skipped.append(f"{t.modality.name}/{t.name}")
            if t.fallback:
                report.fallback.append(f"{t.modality.name}/{t.name}")
            report.files.append(artifacts.features_file(study.run_dir, t.modality.name, t.name))
    _log_report(report)
    if failures:
        lines = {r[0]: r[3] for rows in rows_by_modality.values() for r in rows}
        raise ManifestError(
            f"{len(failures)} image(s) could not be used; everything else was embedded and saved:",
            [f"line {lines.get(f.case_id, '?')}, {m}: {f.path}: {f.reason}" for m, f in failures],
            hint="Fix or remove these images and run extract again: only they will be computed.")
    return report


def _log_report(report):
    for label, n in report.computed.items():
        log.info("%s: %d computed, %d reused from cache", label, n, report.reused.get(label, 0))
    for label in report.skipped:
        log.info("%s: unchanged (fingerprint matches), nothing to do", label)
    for label in report.fallback:
        log.warning("%s: made with SEEDED RANDOM weights (ImageNet weights unavailable)", label)
