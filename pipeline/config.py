"""The study file (YAML) as a typed, frozen ``Study``, validated once, up front, all problems at once.

Top-level keys, the label, modalities and clinical columns are declared here; each stage's own
section (``extract:``, ``fit:``…) is declared by its stage module and checked against the real
registries (learners and their parameters, backbones, balancing) before any stage runs. Command-line
flags are overrides of study keys, kept as ``KEY=VALUE`` text so a run can print how to redo it.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml

from models.layout import CLINICAL_KINDS
from pipeline import settings as s
from pipeline.errors import ConfigError
from pipeline.modalities import Modality, modalities as _modalities  # noqa: F401  (Modality: re-exported)
from pipeline.stages import STAGES



@dataclass(frozen=True)
class TopSettings:
    study: str = s.setting("study", s.text, "a non-empty name", "name shown in artifacts and reports")
    manifest: str | None = s.setting(None, s.text, "a path to a CSV file", "manifest CSV, relative to the study file")
    output: str = s.setting("run", s.text, "a folder path", "run folder, relative to the study file")
    seed: int = s.setting(0, lambda v: s.is_int(v) and v >= 0, "a non-negative integer", "seed for everything random")
    patient_column: str = s.setting("patient_id", s.text, "a column name",
                                    "grouping for splits (defaults to case_id when absent)")
    patient_id_normalise: bool = s.setting(False, s.boolean, "true or false",
                                           "read patient ids (and fuse.group_column values) that are one "
                                           "number written differently (1, 1.0, 01) as one patient")


@dataclass(frozen=True)
class LabelSettings:
    column: str = s.setting("label", s.text, "a column name", "the class column")
    positive: str | None = s.setting(None, s.opt_text, "a class name or null", "positive class for binary metrics")
    map: dict = s.setting({}, lambda v: isinstance(v, dict), "a mapping of label to class",
                          "merge labels, e.g. {benign: abnormal, malignant: abnormal}")
    drop: list = s.setting([], lambda v: isinstance(v, list), "a list of labels",
                           "labels whose cases are excluded (counted and listed)")
    normalise: bool = s.setting(False, s.boolean, "true or false",
                                "read labels that differ only in case or spaces as one (lower case, single spaces)")


@dataclass(frozen=True)
class Study:
    """A validated study: every section typed and frozen, paths resolved, the flags it was given."""

    name: str
    seed: int
    patient_column: str
    manifest_path: Path
    run_dir: Path
    path: Path | None                 # the study file (None when built in memory)
    label: LabelSettings
    modalities: MappingProxyType      # name -> Modality
    clinical: MappingProxyType        # column -> numeric | ordinal | categorical
    sections: MappingProxyType        # stage section name -> its frozen settings
    flags: tuple = ()                 # KEY=VALUE overrides applied over the study file
    patient_id_normalise: bool = False

    def __getattr__(self, name):
        sections = object.__getattribute__(self, "sections")
        if name in sections:
            return sections[name]
        raise AttributeError(name)

    @property
    def label_column(self):
        return self.label.column

    @property
    def backbones(self):
        return self.sections["extract"].backbones

    def to_dict(self):
        """The resolved study: every default filled, paths absolute; ``validate`` reads it back."""
        out = {"study": self.name, "manifest": str(self.manifest_path), "output": str(self.run_dir),
               "seed": self.seed, "patient_column": self.patient_column,
               "patient_id_normalise": self.patient_id_normalise, "label": s.as_dict(self.label),
               "modalities": {m.name: m.to_dict() for m in self.modalities.values()},
               "clinical": dict(self.clinical)}
        out.update({name: s.as_dict(section) for name, section in self.sections.items()})
        return out

    def config_of(self, keys):
        """The result-relevant values of some keys (a top-level key or a section), for fingerprints."""
        full, out = self.to_dict(), {}
        for key in keys:
            section = self.sections.get(key)
            out[key] = s.as_dict(section, neutral=False) if section is not None else full[key]
        return out

    def with_overrides(self, overrides):
        """The same study with more ``(keys, value)`` overrides (also added to its flags)."""
        raw = apply_overrides(self.to_dict(), overrides)
        return validate(raw, Path.cwd(), path=self.path, flags=self.flags + tuple(flag_text(k, v) for k, v in overrides))


def _clinical(clinical, errors):
    if clinical is None:
        return {}
    if not isinstance(clinical, dict):
        errors.append(f"clinical: expected a mapping of column to type ({', '.join(CLINICAL_KINDS)})")
        return {}
    for column, kind in clinical.items():
        if kind not in CLINICAL_KINDS:
            errors.append(f"clinical.{column}: expected one of {', '.join(CLINICAL_KINDS)}, got {kind!r}")
    return {str(c): k for c, k in clinical.items()}


def _stage_sections(raw, errors):
    """Each stage's own section, built by the stage's settings class (its checks, its registries)."""
    out = {}
    for name, stage in STAGES.items():
        if stage.settings is None:
            continue
        parse = getattr(stage.settings, "parse", None)
        where = f"{name}."
        if parse is not None:
            section = parse(raw.get(name), where, errors)
        else:
            section = s.build_section(stage.settings, raw.get(name), where, errors,
                                      moved=getattr(stage.settings, "MOVED", None))
        problems = getattr(section, "problems", None)
        if problems is not None:
            errors.extend(problems(where))
        out[name] = section
    return out


def known_top_keys():
    fields = [f.name for f in dataclasses.fields(TopSettings)]
    return set(fields) | {"label", "modalities", "clinical"} | {n for n, st in STAGES.items() if st.settings}


def validate(raw, base_dir, source="study file", path=None, flags=()):
    """Validate a raw config mapping into a Study; raise ConfigError listing every problem."""
    errors = []
    if not isinstance(raw, dict):
        raise ConfigError(f"Invalid {source}: expected a YAML mapping at the top level, got "
                          f"{type(raw).__name__}.")
    top_fields = {f.name for f in dataclasses.fields(TopSettings)}
    for key in raw:
        if key not in known_top_keys():
            s.unknown_key(key, known_top_keys(), "", errors)
    top = s.build_section(TopSettings, {k: v for k, v in raw.items() if k in top_fields}, "", errors)
    label = s.build_section(LabelSettings, raw.get("label"), "label.", errors)
    modalities = _modalities(raw.get("modalities"), errors)
    clinical = _clinical(raw.get("clinical"), errors)
    sections = _stage_sections(raw, errors)
    if top.manifest is None:
        errors.append("manifest: required; the path of the manifest CSV (relative to the study file)")
    if errors:
        raise ConfigError(f"Invalid {source}" + (f" {path}" if path else "") + ":", errors,
                          hint="Fix these keys (see `run_pipeline.py --help` and configs/demo.yaml).")
    base_dir = Path(base_dir)
    # sections naming files of their own (evaluate's cohort manifests) resolve them like `manifest`
    sections = {n: (sec.resolved(base_dir) if hasattr(sec, "resolved") else sec) for n, sec in sections.items()}
    return Study(name=top.study, seed=top.seed, patient_column=top.patient_column,
                 manifest_path=(base_dir / top.manifest).resolve(), run_dir=(base_dir / top.output).resolve(),
                 path=Path(path) if path is not None else None, label=label,
                 modalities=MappingProxyType(modalities), clinical=MappingProxyType(clinical),
                 sections=MappingProxyType(sections), flags=tuple(flags),
                 patient_id_normalise=top.patient_id_normalise)


def flag_text(keys, value):
    """An override as the `--set` text that reproduces it: 'fit.learners=[lr, rf]'."""
    return f"{'.'.join(keys)}={yaml_text(value)}"


def yaml_text(value):
    """A value as one line of YAML, as a user would write it: [lr, rf], {a: b}, 0.25."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("...\n").strip()


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


def read_study_file(path):
    """The raw mapping of a study file; a clear error when it is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Study file not found: {path}",
                          hint="Pass an existing YAML file with --config (see configs/demo.yaml).")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Study file {path} is not valid YAML:", [str(exc)]) from None


def load_study(path, overrides=()):
    """Read, override and validate a study file; the overrides are kept as its flags."""
    path = Path(path)
    raw = apply_overrides(read_study_file(path), overrides)
    flags = tuple(flag_text(keys, value) for keys, value in overrides)
    return validate(raw, path.resolve().parent, path=path, flags=flags)


def dump_study(raw, path):
    """Write a study file (used by the demo and importers)."""
    Path(path).write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
