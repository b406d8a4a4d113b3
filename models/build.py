"""From fit settings to the unfitted estimator of each learner name, and the checks of those
settings that need no data: a study's mistakes surface when it is loaded, all at once, not as a
TypeError in the middle of a fit.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from .balancing import BALANCING
from .errors import ModelsError
from .layout import FeatureLayout
from .learners import LEARNERS, META_LEARNERS, make_pipeline, make_stack
from .tuning import TunedEstimator

STACK = "stack"  # the name of the stacked model, beside the learner names
# any valid layout will do to list a pipeline's parameters: they do not depend on the columns
_PROBE = FeatureLayout(blocks={"probe": ["x"]})


@dataclass(frozen=True)
class FitSettings:
    """What ``build_estimator`` needs of the study's fit section (the rest, like n_jobs, is the
    caller's). Defaults are ``make_pipeline``'s; a study's own defaults live in its config."""

    learners: Sequence[str] = ()
    stack: bool = False
    stack_base: Sequence[str] = ()
    meta: str = "lr"
    pca_components: float | int | None = 0.95
    balancing: str = "smote"
    k_neighbors: int = 5
    params: Mapping[str, Mapping] = field(default_factory=dict)
    meta_params: Mapping = field(default_factory=dict)
    tune: Mapping[str, Mapping] = field(default_factory=dict)
    tune_iter: int = 10

    @classmethod
    def from_mapping(cls, values: Mapping) -> "FitSettings":
        """The settings named in ``values`` (a fit section as a mapping); other keys are ignored."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def _tune_key(key: str, params) -> str:
    """A key with "__" addresses a pipeline step as written; a bare one is the estimator's own
    parameter, wherever a wrapper (svm's calibration, xgb's label encoding) put the estimator."""
    if "__" in key:
        return key
    inner = f"model__estimator__{key}"
    return inner if inner in params else f"model__{key}"


def tune_grid(pipeline, grid: Mapping) -> dict:
    """``fit.tune``'s {parameter: values} of one learner as the pipeline's parameter names."""
    params = pipeline.get_params()
    return {_tune_key(k, params): v for k, v in grid.items()}


def build_estimator(name, layout, settings: FitSettings, seed):
    """One unfitted pipeline (or, for ``STACK``, the stack) of a learner name; a learner named in
    ``settings.tune`` is wrapped in its nested randomized search."""
    layout = FeatureLayout.coerce(layout)
    common = {"balancing": settings.balancing, "pca_components": settings.pca_components,
              "random_state": seed, "k_neighbors": settings.k_neighbors}
    if name == STACK:
        return make_stack(settings.stack_base, layout, meta=settings.meta, params=settings.params,
                          meta_params=settings.meta_params, **common)
    pipeline = make_pipeline(name, layout, settings.params.get(name), **common)
    if name not in settings.tune:
        return pipeline
    grid = tune_grid(pipeline, settings.tune[name])
    unknown = sorted(set(grid) - set(pipeline.get_params()))
    if unknown:
        raise ModelsError(f"cannot tune {unknown} of learner '{name}': not parameters of its pipeline")
    return TunedEstimator(pipeline, grid, n_iter=settings.tune_iter, random_state=seed)


# --- checks without fitting -----------------------------------------------------------------

def _close(word, choices) -> str:
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"; did you mean '{match[0]}'?" if match else ""


def _estimator_name(name) -> str:
    """The library class a user looks up (our CappedKNeighbors is a KNeighborsClassifier)."""
    mro = LEARNERS[name].estimator.__mro__
    return next(c.__name__ for c in mro if not c.__module__.startswith(f"{__package__}."))


def _unknown_learner(name, key) -> str:
    return (f"{key}: unknown learner '{name}'{_close(name, LEARNERS)} "
            f"(choose from {', '.join(LEARNERS)})")


def _names(names, key, problems):
    """Unknown or repeated learner names in the list at ``key``."""
    seen = set()
    for i, name in enumerate(names):
        where = f"{key}[{i}]"
        if name == STACK:
            problems.append(f"{where}: '{STACK}' is not a base learner; `stack: true` adds the stack")
        elif name not in LEARNERS:
            problems.append(_unknown_learner(name, where))
        elif name in seen:
            problems.append(f"{where}: '{name}' is listed twice")
        seen.add(name)


def _mapping(value, key, problems, what) -> bool:
    if isinstance(value, Mapping):
        return True
    problems.append(f"{key}: expected a mapping of {what}, got {value!r}")
    return False


def _per_learner(given, key, problems):
    """(learner, its settings, its key) of a learner → settings mapping, unknown names reported."""
    if not _mapping(given, key, problems, "learner to settings"):
        return
    for name, value in given.items():
        if name in LEARNERS:
            yield name, value, f"{key}.{name}"
        else:
            problems.append(_unknown_learner(name, f"{key}.{name}"))


def _parameters(name, given, key, problems, role=""):
    """Keys of ``given`` that are not parameters of learner ``name``'s estimator."""
    if not _mapping(given, key, problems, "parameter to value"):
        return
    valid = LEARNERS[name].parameters()
    for param in given:
        if param not in valid:
            close = _close(param, valid)
            listed = "" if close else f" (its parameters: {', '.join(valid)})"
            problems.append(f"{key}.{param}: unknown parameter of {_estimator_name(name)}{role}"
                            f"{close}{listed}")


def _tune(name, grid, balancing, key, problems):
    """Tuned parameter names against the unfitted pipeline's own; values must be candidates."""
    if not _mapping(grid, key, problems, "parameter to candidate values"):
        return
    known = balancing in BALANCING   # if not (reported already), the sampler's keys are unknowable
    params = make_pipeline(name, _PROBE, balancing=balancing if known else "none").get_params()
    bare = sorted({p.rsplit("__", 1)[1] for p in params if p.startswith("model__")})
    for param, values in grid.items():
        unknowable = not known and str(param).startswith("balance__")
        if _tune_key(param, params) not in params and not unknowable:
            what, choices = ((f"the {name} pipeline", params) if "__" in str(param)
                             else (_estimator_name(name), bare))
            problems.append(f"{key}.{param}: unknown parameter of {what}{_close(param, choices)}")
        if not (hasattr(values, "rvs") or (isinstance(values, (list, tuple)) and len(values) > 0)):
            problems.append(f"{key}.{param}: expected a non-empty list of candidate values (or a "
                            f"scipy.stats distribution), got {values!r}")


def learner_problems(*, learners, stack, stack_base, meta, params, meta_params, tune, balancing,
                     where="fit") -> list[str]:
    """Every problem of these fit settings, each naming its key under ``where``; [] if none.

    Learner names, each learner's and the meta-learner's parameters (from the estimators' own
    ``get_params()``), tuned parameters (from the unfitted pipeline's), balancing, and whether
    anything is left to fit. Builds estimators but fits nothing.
    """
    problems = []
    if not learners and not stack:
        problems.append(f"{where}.learners: empty and {where}.stack is false: nothing to fit")
    _names(learners, f"{where}.learners", problems)
    if stack:
        if not stack_base:
            problems.append(f"{where}.stack_base: empty while {where}.stack is true: a stack needs "
                            "at least one base learner")
        _names(stack_base, f"{where}.stack_base", problems)
    if meta not in META_LEARNERS:
        problems.append(f"{where}.meta: unknown meta-learner '{meta}'{_close(meta, META_LEARNERS)} "
                        f"(choose from {', '.join(META_LEARNERS)})")
    else:
        _parameters(meta, meta_params, f"{where}.meta_params", problems, f" (the {meta} meta-learner)")
    if balancing not in BALANCING:
        problems.append(f"{where}.balancing: unknown balancing '{balancing}'"
                        f"{_close(balancing, BALANCING)} (choose from {', '.join(BALANCING)})")
    for name, given, key in _per_learner(params, f"{where}.params", problems):
        _parameters(name, given, key, problems)
    for name, grid, key in _per_learner(tune, f"{where}.tune", problems):
        if name in learners:
            _tune(name, grid, balancing, key, problems)
        else:
            problems.append(f"{key}: '{name}' is not in {where}.learners, so nothing would be "
                            "tuned (the stack's base learners are not tuned)")
    return problems
