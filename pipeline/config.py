"""The study file (YAML): schema, defaults, validation and command-line overrides.

Every problem is collected and reported at once, naming the key; unknown keys are errors.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path

import yaml

from features.preprocess import PreprocessSpec
from pipeline.errors import ConfigError

CLINICAL_TYPES = ("numeric", "ordinal", "categorical")
DEFAULT_BACKBONES = ["resnet50", "vgg16", "efficientnetb0", "handcrafted"]
_PREPROCESS_KEYS = tuple(f.name for f in dataclasses.fields(PreprocessSpec))


class _Field:
    """One scalar key: its type check, default and documentation for --help."""

    def __init__(self, default, check, expected, doc=""):
        self.default, self.check, self.expected, self.doc = default, check, expected, doc


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _pos_int(v):
    return _is_int(v) and v > 0


def _non_neg_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def _opt_str(v):
    return v is None or (isinstance(v, str) and v.strip() != "")


def _str(v):
    return isinstance(v, str) and v.strip() != ""


def _bool(v):
    return isinstance(v, bool)


def _opt_size(v):
    return v is None or (_is_int(v) and v >= 32)


TOP = {
    "study": _Field("study", _str, "a non-empty name", "name shown in artifacts and reports"),
    "manifest": _Field(None, _str, "a path to a CSV file", "manifest CSV, relative to the study file"),
    "output": _Field("run", _str, "a folder path", "run folder, relative to the study file"),
    "seed": _Field(0, lambda v: _is_int(v) and v >= 0, "a non-negative integer", "seed for everything random"),
    "patient_column": _Field("patient_id", _str, "a column name", "grouping for splits (defaults to case_id when absent)"),
}
LABEL = {
    "column": _Field("label", _str, "a column name", "the class column"),
    "positive": _Field(None, _opt_str, "a class name or null", "positive class for binary metrics"),
    "map": _Field({}, lambda v: isinstance(v, dict), "a mapping of label to class",
                  "merge labels, e.g. {benign: abnormal, malignant: abnormal}"),
    "drop": _Field([], lambda v: isinstance(v, list), "a list of labels",
                   "labels whose cases are excluded (counted and listed)"),
}


def _fraction(v):
    return isinstance(v, float) and 0 < v < 1


def _pca(v):
    return v is None or _pos_int(v) or _fraction(v)


def _str_list(v):
    return isinstance(v, list) and all(_str(x) for x in v)


FUSE = {
    "missing_modality": _Field("impute", lambda v: v in ("impute", "drop"), "'impute' or 'drop'",
                               "cases lacking a modality: impute per fold (with an indicator) or drop"),
    "test_size": _Field(0.2, _fraction, "a fraction between 0 and 1", "held-out share of patients"),
    "n_folds": _Field(5, lambda v: _is_int(v) and v >= 2, "an integer >= 2", "cross-validation folds"),
    "n_repeats": _Field(1, _pos_int, "a positive integer", "repeated cross-validation"),
    "group_column": _Field(None, _opt_str, "a column name or null",
                           "extra grouping kept within one fold (e.g. near-duplicate groups)"),
}
ABLATIONS = ("modality", "backbone", "images_only", "clinical_only")
FIT = {
    "learners": _Field(["knn", "svm", "rf", "et", "mlp", "lr", "xgb"], _str_list, "a list of learner names",
                       "base learners compared"),
    "stack": _Field(True, _bool, "true or false", "add the stacking meta-learner"),
    "stack_base": _Field(["knn", "svm", "rf", "et", "mlp"], _str_list, "a list of learner names",
                         "the stack's base learners"),
    "meta": _Field("lr", lambda v: v in ("lr", "mlp", "xgb"), "'lr', 'mlp' or 'xgb'", "the stack's meta-learner"),
    "pca_components": _Field(64, _pca, "null, a positive integer or a fraction in (0, 1)",
                             "per-block PCA: components, or variance kept"),
    "balancing": _Field("smote", lambda v: v in ("smote", "borderline-smote", "adasyn", "class-weight", "none"),
                        "smote | borderline-smote | adasyn | class-weight | none", "class balancing per fold"),
    "k_neighbors": _Field(5, _pos_int, "a positive integer", "SMOTE neighbours"),
    "params": _Field({}, lambda v: isinstance(v, dict), "a mapping of learner to settings",
                     "learner settings, e.g. {rf: {n_estimators: 500}}"),
    "meta_params": _Field({}, lambda v: isinstance(v, dict), "a mapping", "meta-learner settings"),
    "ablations": _Field(list(ABLATIONS), lambda v: isinstance(v, list) and all(a in ABLATIONS for a in v),
                        f"a list drawn from {', '.join(ABLATIONS)}", "stack refits on subsets of blocks"),
    "tune": _Field({}, lambda v: isinstance(v, dict) and all(isinstance(d, dict) for d in v.values()),
                   "a mapping of learner to {parameter: [values]}",
                   "randomized search nested in each training fold, e.g. {rf: {max_depth: [4, 8, null]}}"),
    "tune_iter": _Field(10, _pos_int, "a positive integer", "candidates tried per tuned learner"),
    "n_jobs": _Field(2, lambda v: _is_int(v) and (v > 0 or v == -1), "a positive integer or -1",
                     "parallel fits"),
    "n_boot": _Field(1000, lambda v: _is_int(v) and v >= 100, "an integer >= 100",
                     "bootstrap resamples for held-out intervals"),
}
EXTRACT = {
    "backbones": _Field(list(DEFAULT_BACKBONES), None, "a list", "keras.applications names or 'handcrafted'"),
    "weights": _Field("imagenet", _str, "'imagenet', 'random', or a path", "imagenet | random | a local .h5 file or folder"),
    "input_size": _Field(None, _opt_size, "null or an integer >= 32", "backbone input size (default: its own)"),
    "batch_size": _Field(16, _pos_int, "a positive integer", "images per forward pass"),
    "workers": _Field(2, _pos_int, "a positive integer", "threads decoding and preprocessing images"),
    "flip_tta": _Field(False, _bool, "true or false", "average the embedding of the image and its mirror"),
    "mixed_precision": _Field(False, _bool, "true or false", "float16 compute on GPU"),
    "checkpoint_seconds": _Field(30.0, _non_neg_number, "a number >= 0", "how often partial results are saved"),
    "allow_random_fallback": _Field(False, _bool, "true or false",
                                    "use seeded random weights when ImageNet weights cannot be had (demo only)"),
}
BACKBONE_ITEM = {
    "name": _Field(None, _str, "a backbone name"),
    "weights": _Field(None, _opt_str, "'imagenet', 'random', or a path"),
    "input_size": _Field(None, _opt_size, "null or an integer >= 32"),
}
MODALITY = {"path_column", "mask_column", "preprocessing"}
REPORT = {
    "hide_case_ids": _Field(False, _bool, "true or false", "show cases as 'case 1..n' instead of their ids"),
    "occlusion_grid": _Field(4, lambda v: _is_int(v) and 2 <= v <= 16, "an integer from 2 to 16",
                             "explain: occlusion patches per side (grid x grid re-embeddings per image)"),
    "occlusion_cases": _Field(4, lambda v: _is_int(v) and 1 <= v <= 32, "an integer from 1 to 32",
                              "explain: held-out cases mapped (the first of those the SHAP section explains)"),
    "occlusion_fill": _Field("mean", lambda v: v in ("mean", "blur"), "'mean' or 'blur'",
                             "explain: what replaces a patch (the image mean, or a heavy blur of it)"),
    "tree_top_k": _Field(12, _pos_int, "a positive integer",
                         "beeswarm: components shown beside the clinical variables"),
}
SECTIONS = {"label": LABEL, "extract": EXTRACT, "fuse": FUSE, "fit": FIT, "report": REPORT}
ALL_TOP_KEYS = set(TOP) | set(SECTIONS) | {"modalities", "clinical"}


@dataclass(frozen=True)
class Modality:
    name: str
    path_column: str
    mask_column: str | None
    preprocess: PreprocessSpec


@dataclass(frozen=True)
class BackboneChoice:
    name: str
    weights: str
    input_size: int | None


@dataclass
class Study:
    """A validated study: the config dict with defaults filled, plus resolved paths."""

    config: dict
    path: Path | None
    manifest_path: Path
    run_dir: Path
    modalities: dict
    backbones: list

    @property
    def seed(self):
        return self.config["seed"]

    @property
    def extract(self):
        return self.config["extract"]

    @property
    def clinical(self):
        return self.config["clinical"]

    @property
    def label_column(self):
        return self.config["label"]["column"]

    @property
    def fuse(self):
        return self.config["fuse"]

    @property
    def fit(self):
        return self.config["fit"]

    @property
    def patient_column(self):
        return self.config["patient_column"]


def _unknown(key, known, where, errors):
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
    errors.append(f"{where}{key}: unknown key{hint}")


def _fill(section, schema, where, errors):
    """Check a mapping against a schema of scalar fields; return it with defaults filled."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        errors.append(f"{where.rstrip('.')}: expected a mapping, got {type(section).__name__}")
        return {k: copy.deepcopy(f.default) for k, f in schema.items()}
    out = {}
    for key, value in section.items():
        if key not in schema:
            _unknown(str(key), schema, where, errors)
            continue
        field = schema[key]
        if field.check is not None and not field.check(value):
            errors.append(f"{where}{key}: expected {field.expected}, got {value!r}")
        out[key] = value
    for key, field in schema.items():
        out.setdefault(key, copy.deepcopy(field.default))
    return out


def _check_backbones(items, errors):
    where = "extract.backbones"
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list) or not items:
        errors.append(f"{where}: expected a non-empty list of names or mappings, got {items!r}")
        return []
    out, seen = [], set()
    for i, item in enumerate(items):
        entry = {"name": item} if isinstance(item, str) else item
        if not isinstance(entry, dict):
            errors.append(f"{where}[{i}]: expected a name or a mapping with 'name', got {item!r}")
            continue
        entry = _fill(entry, BACKBONE_ITEM, f"{where}[{i}].", errors)
        name = entry["name"]
        if not _str(name):
            errors.append(f"{where}[{i}].name: expected a backbone name")
            continue
        key = name.lower()
        if key in seen:
            errors.append(f"{where}[{i}]: backbone '{name}' is listed twice")
        seen.add(key)
        out.append(entry)
    return out


def _check_modalities(mods, errors):
    if not isinstance(mods, dict) or not mods:
        errors.append("modalities: expected a mapping of modality name to settings, e.g. "
                      "{mammography: {path_column: mammography_path}}")
        return {}
    out = {}
    for name, settings in mods.items():
        where = f"modalities.{name}"
        settings = {} if settings is None else settings
        if not isinstance(settings, dict):
            errors.append(f"{where}: expected a mapping, got {settings!r}")
            continue
        for key in settings:
            if key not in MODALITY:
                _unknown(str(key), MODALITY, f"{where}.", errors)
        path_column = settings.get("path_column", f"{name}_path")
        mask_column = settings.get("mask_column")
        if not _str(path_column):
            errors.append(f"{where}.path_column: expected a column name, got {path_column!r}")
        if not _opt_str(mask_column):
            errors.append(f"{where}.mask_column: expected a column name or null, got {mask_column!r}")
        prep = settings.get("preprocessing") or {}
        if not isinstance(prep, dict):
            errors.append(f"{where}.preprocessing: expected a mapping, got {prep!r}")
            continue
        bad = [k for k in prep if k not in _PREPROCESS_KEYS]
        for key in bad:
            _unknown(str(key), _PREPROCESS_KEYS, f"{where}.preprocessing.", errors)
        prep = {k: v for k, v in prep.items() if k not in bad}
        kind = prep.pop("kind", name if name in ("mammography", "ultrasound") else "none")
        try:
            spec = PreprocessSpec.for_modality(kind, **prep)
        except (TypeError, ValueError) as exc:
            errors.append(f"{where}.preprocessing: {exc}")
            continue
        if spec.roi_crop and not mask_column:
            errors.append(f"{where}.preprocessing.roi_crop: needs {where}.mask_column (the mask to crop to)")
        out[str(name)] = Modality(str(name), path_column, mask_column, spec)
    return out


def _check_clinical(clinical, errors):
    if clinical is None:
        return {}
    if not isinstance(clinical, dict):
        errors.append(f"clinical: expected a mapping of column to type ({', '.join(CLINICAL_TYPES)})")
        return {}
    for column, kind in clinical.items():
        if kind not in CLINICAL_TYPES:
            errors.append(f"clinical.{column}: expected one of {', '.join(CLINICAL_TYPES)}, got {kind!r}")
    return dict(clinical)


def validate(raw, base_dir, source="study file", path=None):
    """Validate a raw config mapping; raise ConfigError listing every problem."""
    errors = []
    if not isinstance(raw, dict):
        raise ConfigError(f"Invalid {source}: expected a YAML mapping at the top level, got "
                          f"{type(raw).__name__}.")
    for key in raw:
        if key not in ALL_TOP_KEYS:
            _unknown(str(key), ALL_TOP_KEYS, "", errors)
    config = _fill({k: v for k, v in raw.items() if k in TOP}, TOP, "", errors)
    for name, schema in SECTIONS.items():
        config[name] = _fill(raw.get(name), schema, f"{name}.", errors)
    config["extract"]["backbones"] = _check_backbones(config["extract"]["backbones"], errors)
    modalities = _check_modalities(raw.get("modalities"), errors)
    config["modalities"] = raw.get("modalities")
    config["clinical"] = _check_clinical(raw.get("clinical"), errors)
    if config["manifest"] is None:
        errors.append("manifest: required; the path of the manifest CSV (relative to the study file)")
    if errors:
        raise ConfigError(f"Invalid {source}" + (f" {path}" if path else "") + ":", errors,
                          hint="Fix these keys (see `run_pipeline.py --help` and configs/demo.yaml).")
    ex = config["extract"]
    backbones = [BackboneChoice(b["name"].lower(), b["weights"] or ex["weights"],
                                b["input_size"] or ex["input_size"]) for b in ex["backbones"]]
    return Study(config=config, path=path,
                 manifest_path=(base_dir / config["manifest"]).resolve(),
                 run_dir=(base_dir / config["output"]).resolve(),
                 modalities=modalities, backbones=backbones)


def parse_override(text):
    """'extract.batch_size=8' -> (['extract', 'batch_size'], 8), the value read as YAML."""
    if "=" not in text:
        raise ConfigError(f"Invalid --set {text!r}: expected KEY=VALUE, e.g. extract.batch_size=8")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Invalid --set {text!r}: the value is not valid YAML ({exc})") from None
    return key.strip().split("."), parsed


def apply_overrides(raw, overrides):
    """Return a copy of ``raw`` with dotted-key overrides applied (command line wins)."""
    raw = copy.deepcopy(raw)
    for keys, value in overrides:
        node = raw
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        node[keys[-1]] = value
    return raw


def load_study(path, overrides=()):
    """Read, override and validate a study file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Study file not found: {path}",
                          hint="Pass an existing YAML file with --config (see configs/demo.yaml).")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"Study file {path} is not valid YAML:", [str(exc)]) from None
    raw = apply_overrides(raw or {}, overrides)
    return validate(raw, path.resolve().parent, path=path)


def dump_study(raw, path):
    """Write a study file (used by the demo and importers)."""
    Path(path).write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def _leaves(node, prefix=()):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, (*prefix, str(key)))
    else:
        yield prefix, node


def override_flags(file_config, effective_config, base_dir):
    """The `--set KEY=VALUE` flags that turn a study file's config into the effective one (what a
    run really used after command-line flags), so a report can print commands that reproduce it.

    Both are validated configs (defaults filled); ``manifest`` and ``output`` are compared as paths
    resolved against ``base_dir`` (the study file's folder).
    """
    base = dict(_leaves(file_config))
    flags = []
    for keys, value in _leaves(effective_config):
        before = base.get(keys)
        if keys in (("manifest",), ("output",)):
            same = before is not None and value is not None and \
                (Path(base_dir) / before).resolve() == (Path(base_dir) / value).resolve()
            value = str((Path(base_dir) / value).resolve()) if value is not None else value
        else:
            same = before == value
        if not same:
            text = yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("...\n")
            flags.append(f"{'.'.join(keys)}={text.strip()}")
    return flags
