"""The `extract` stage: embed every image of every modality with every backbone, cached in HDF5.

Each embedding is keyed by image content + mask + preprocessing + extractor + weights, so an
unchanged image is never embedded twice: a (modality, backbone) file whose rows and keys are
unchanged is carried into the new record untouched, and partial results are checkpointed so a
killed or failed run resumes with identical numbers. Weights are resolved here once (a seeded
random fallback included, where the study allows it) and recorded in the run record.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from features.backbones import DEFAULT_BACKBONES
from features.backbones.keras_family import RUNTIMES
from features.hashing import hash_json
from pipeline import settings as s
from pipeline.cluster import EXPECTED, scheduler_ok
from pipeline.contract import Artifact, Flag, Stage
from pipeline.image_index import image_index, row_key

VERSION = 1


@dataclass(frozen=True)
class BackboneChoice:
    name: str
    weights: str                       # as resolved: its own setting, else the study-wide one
    input_size: int | None = None
    own_weights: str | None = field(default=None, compare=False, repr=False)   # what the study set for it
    spelled: str | None = field(default=None, compare=False, repr=False)       # the name as the study wrote it
    params: dict | None = field(default=None, hash=False)                      # the family's own settings

    def to_dict(self):
        """As the study would say it (reads back to the same choice)."""
        out = {"name": self.name, "weights": self.own_weights, "input_size": self.input_size}
        return {**out, "params": copy.deepcopy(self.params)} if self.params is not None else out


def _opt_size(v):
    return v is None or (s.is_int(v) and v >= 32)


@dataclass(frozen=True)
class ExtractSettings:
    backbones: list = s.setting(list(DEFAULT_BACKBONES), None, "a list",
                                "keras.applications names, 'handcrafted' or 'radiomics' (each a name or "
                                "{name, weights, input_size, params})")
    weights: str = s.setting("imagenet", s.text, "'imagenet', 'random', or a path",
                             "imagenet | random | a local .h5 file or folder")
    input_size: int | None = s.setting(None, _opt_size, "null or an integer >= 32", "backbone input size (default: its own)")
    batch_size: int = s.setting(16, s.pos_int, "a positive integer", "images per forward pass", neutral=True)
    workers: int = s.setting(2, s.pos_int, "a positive integer", "threads decoding and preprocessing images",
                             neutral=True)
    flip_tta: bool = s.setting(False, s.boolean, "true or false", "average the embedding of the image and its mirror")
    mixed_precision: bool = s.setting(False, s.boolean, "true or false", "float16 compute on GPU")
    checkpoint_seconds: float = s.setting(30.0, s.non_neg_number, "a number >= 0",
                                          "how often partial results are saved", neutral=True)
    allow_random_fallback: bool = s.setting(False, s.boolean, "true or false",
                                            "use seeded random weights when ImageNet weights cannot be had (demo only)")
    scheduler: str = s.setting("local", lambda v: scheduler_ok(v), EXPECTED,
                               "where images are embedded: local (this process), dask-local:N (N worker "
                               "processes), or a Dask scheduler address tcp://host:8786", neutral=True)
    decode_cache: bool = s.setting(True, s.boolean, "true or false",
                                   "keep each decoded, preprocessed image (<run>/.cache/decoded) so that another "
                                   "backbone never decodes it again", neutral=True)
    allow_blank: bool = s.setting(False, s.boolean, "true or false",
                                  "embed images under 32 px or blank with a warning instead of stopping",
                                  neutral=True)
    # neutral: OpenVINO's embeddings (float32) equal TensorFlow's to 1e-5 relative
    # (tests/features/test_openvino_runtime.py)
    runtime: str = s.setting(RUNTIMES[0], s.one_of(RUNTIMES), f"one of {', '.join(RUNTIMES)}",
                             "what runs the Keras CNNs: tensorflow, or openvino (CPU, float32; the converted model "
                             "is kept in <run>/.cache/openvino; pip install -r requirements-openvino.txt)",
                             neutral=True)

    @classmethod
    def parse(cls, mapping, where, errors):
        mapping = mapping if isinstance(mapping, dict) else ({} if mapping is None else mapping)
        section = s.build_section(cls, mapping, where, errors, backbones=[])
        items = mapping.get("backbones", list(DEFAULT_BACKBONES)) if isinstance(mapping, dict) else []
        backbones = _backbone_items(items, section, f"{where}backbones", errors)
        return cls(**{**s.as_dict(section), "backbones": backbones})

    def problems(self, where):
        """Backbone names against the registries, a study-wide weights path that does not exist, a
        runtime whose package is not installed."""
        from features.backbones import backbone_problems  # noqa: PLC0415

        out = [f"{where}backbones[{i}]: {p}" for i, b in enumerate(self.backbones)
               for p in backbone_problems(b.spelled or b.name, b.own_weights, b.params)]
        if self.weights not in ("imagenet", "random") and not Path(self.weights).expanduser().exists():
            out.append(f"{where}weights: {self.weights} is neither 'imagenet', 'random' nor an existing "
                       f".h5 file or folder")
        return out + self._runtime_problems(where)

    def _runtime_problems(self, where):
        """A runtime that cannot run here, when a backbone would use it (only the Keras family does)."""
        from features.backbones import FAMILIES, family_of  # noqa: PLC0415
        from features.errors import BackboneError  # noqa: PLC0415

        families = set()
        for b in self.backbones:
            try:
                families.add(family_of(b.spelled or b.name))
            except BackboneError:   # an unknown name: reported above
                continue
        takers = [FAMILIES[f] for f in sorted(families) if getattr(FAMILIES[f], "TAKES_RUNTIME", False)]
        found = dict.fromkeys(p for family in takers for p in family.runtime_problems(self.runtime))
        return [f"{where}runtime: {p}" for p in found]


_ENTRY_KEYS = ("name", "weights", "input_size", "params")


def _backbone_items(items, section, where, errors):
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list) or not items:
        errors.append(f"{where}: expected a non-empty list of names or mappings, got {items!r}")
        return []
    out, seen = [], set()
    for i, item in enumerate(items):
        entry = {"name": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or not s.text(entry.get("name")):
            errors.append(f"{where}[{i}]: expected a name or a mapping with 'name', got {item!r}")
            continue
        for key in entry:
            if key not in _ENTRY_KEYS:
                s.unknown_key(key, _ENTRY_KEYS, f"{where}[{i}].", errors)
        params = entry.get("params")
        if params is not None and not isinstance(params, dict):
            errors.append(f"{where}[{i}].params: expected a mapping of the backbone's own settings, got {params!r}")
            params = None
        if not s.opt_text(entry.get("weights")):
            errors.append(f"{where}[{i}].weights: expected 'imagenet', 'random', or a path")
        if not _opt_size(entry.get("input_size")):
            errors.append(f"{where}[{i}].input_size: expected null or an integer >= 32, got {entry['input_size']!r}")
        name = entry["name"]
        if name.lower() in seen:
            errors.append(f"{where}[{i}]: backbone '{name}' is listed twice")
        seen.add(name.lower())
        out.append(BackboneChoice(name.lower(), entry.get("weights") or section.weights,
                                  entry.get("input_size") or section.input_size, entry.get("weights"), name,
                                  copy.deepcopy(params)))
    return out


def external(session):
    """The content of every image and mask, and of the weights (a local file's sha256, the Keras
    version for ImageNet): what the embeddings are made from besides the settings."""
    from features.backbones import resolve_weights  # noqa: PLC0415

    index = image_index(session)
    study = session.study
    # a view joins the hashed row only where there is one, so studies without views keep their fingerprints
    return {"images": {m: {"rows": len(rows), "sha256": hash_json([[r[0], r[3], r[4]] + ([r[6]] if r[6] else [])
                                                                   for r in rows])}
                       for m, rows in index.items()},
            "weights": {b.name: resolve_weights(b.name, b.weights, study.seed, b.params).identity
                        for b in study.extract.backbones}}


def explain_external(old, new, session):
    """Which images changed, appeared or went since extract ran (from its committed image index)."""
    weights = [f"weights of {n} were {w}, now {new['weights'].get(n)}" for n, w in old.get("weights", {}).items()
               if new.get("weights", {}).get(n) != w]
    if old.get("images") == new.get("images"):
        return weights
    try:
        before = session.catalog.read("extract:images")
    except Exception:  # noqa: BLE001  (an old or damaged index: say it generally)
        return ["the images or masks it embedded changed"]
    now = image_index(session)
    lines = []
    for modality in sorted(set(before) | set(now)):
        was = {row_key(r): r for r in before.get(modality, [])}
        is_ = {row_key(r): r for r in now.get(modality, [])}
        changed = [r for c, r in is_.items() if c in was and (r[3], r[4]) != (was[c][3], was[c][4])]
        added, gone = [c for c in is_ if c not in was], [c for c in was if c not in is_]
        if changed:
            shown = ", ".join(f"line {r[1]} {r[0]}{'/' + r[6] if row_key(r)[1] else ''} ({r[2]}"
                              f"{'' if r[3] else ', missing'})" for r in changed[:5])
            lines.append(f"{len(changed)} {modality} image(s) or mask(s) changed since it ran: {shown}"
                         + (" ..." if len(changed) > 5 else ""))
        if added or gone:
            lines.append(f"the manifest now has {len(is_)} {modality} image(s), it embedded {len(was)} "
                         f"({len(added)} new, {len(gone)} no longer listed)")
    return weights + (lines or ["the images or masks it embedded changed"])


def compute(ctx):
    from pipeline.embedding_cache import embed_study  # noqa: PLC0415  (heavy: image and CNN code)

    return embed_study(ctx, image_index(ctx.session))


STAGE = Stage(
    name="extract", version=VERSION, folder="features", noun="embeddings",
    summary="embed images with frozen CNNs (and handcrafted descriptors)",
    description="Embed every image of every modality with every configured backbone.\n\n"
                "The study file (YAML) names the manifest, the modalities and their preprocessing, the clinical\n"
                "columns and the backbones; see configs/demo.yaml for a commented example. Flags override it.\n"
                "Outputs go to <run>/features/<modality>/<backbone>.h5. A second run with unchanged inputs\n"
                "computes nothing; new or changed images are the only ones embedded. A killed run resumes.\n\n"
                "Weights: 'imagenet' (Keras downloads and caches them in ~/.keras/models, or $KERAS_HOME/models),\n"
                "a local .h5 file or a folder holding the official Keras files (for machines without internet),\n"
                "or 'random' (seeded; for tests only: random features are not ImageNet features).",
    config=("modalities", "extract", "seed"),
    writes=(Artifact("embeddings", "{modality}/{backbone}.h5", "embeddings of one (modality, backbone)"),
            Artifact("images", "images.json", "the images and masks embedded, with their content hashes")),
    compute=compute, external=external, explain_external=explain_external, settings=ExtractSettings,
    needs_manifest=True, needs_images=True,
    message=lambda o: (f"extract: {sum(o.summary['computed'].values()) if o.ran else 0} embedding(s) computed; "
                       f"files in {o.folder}" + (f"; {len(o.summary['notes'])} image(s) with a warning"
                                                 if o.summary.get("notes") else "")),
    flags=(Flag("--backbones", "extract.backbones", "comma-separated backbones, e.g. resnet50,vgg16,"
                "efficientnetb0,handcrafted (any keras.applications name works)", type=lambda t: [
                    b.strip() for b in t.split(",") if b.strip()]),
           Flag("--weights", "extract.weights", "imagenet | random | path to a .h5 weights file or folder",
                type=lambda w: w if w in ("imagenet", "random") else str(Path(w).resolve())),
           Flag("--batch-size", "extract.batch_size", "images per forward pass (default 16; 8-32 is best on CPU)",
                type=int),
           Flag("--workers", "extract.workers", "threads decoding and preprocessing images (default 2)", type=int),
           Flag("--input-size", "extract.input_size", "backbone input size in pixels (default: the backbone's own)",
                type=int)),
)
