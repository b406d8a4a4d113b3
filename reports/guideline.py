"""Reporting-guideline summary: the TRIPOD+AI and CLAIM 2024 items a run can fill by itself, each
pointing to the report section that holds it; every other item is left to the authors.

Plain data first (``guideline_items``), then markdown (``guideline_markdown``); nothing reads files.
Item numbers and wording follow TRIPOD+AI (Collins et al., BMJ 2024;385:e078378) and the CLAIM 2024
Update (Tejani et al., Radiol Artif Intell 2024;6(4):e240300). An item is filled only from a fact the
run recorded; a fact that is missing leaves its item to the authors, never a guess.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

FILLED = "filled"
AUTHORS = "to be completed by the authors"
STATUSES = (FILLED, AUTHORS)
TRIPOD, CLAIM = "TRIPOD+AI", "CLAIM"
SECTIONS = ("summary", "comparison", "curves", "significance", "ablations", "shap", "provenance",
            "clinical", "external")


@dataclass(frozen=True)
class _Item:
    guideline: str
    item: str
    topic: str
    section: str = ""                      # where the filled text lives in the report
    fill: Callable[[dict], str] | None = None  # facts -> text, "" when the run does not know
    also: str = ""                         # what the item asks beyond what a run can say


# --------------------------------------------------------------------------- formatting


def _known(x) -> bool:
    """A recorded number: NaN or None (a metric that could not be computed) is not a fact."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _f(x, digits=3):
    return f"{float(x):.{digits}f}"


def _ci(ci):
    ok = ci is not None and len(ci) == 2 and all(_known(v) for v in ci)
    return f" (95% CI {_f(ci[0])}–{_f(ci[1])})" if ok else ""


def _plain(value):
    """A config value as prose: dicts as 'k: v' (unrecorded values left out), lists comma-joined."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items() if v not in (None, ""))
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _sentence(value):
    """A recorded free-text fact as one sentence ("" when absent)."""
    text = " ".join(_plain(value).split()) if value not in (None, "") else ""
    return text if not text or text.endswith(".") else text + "."


def _join(parts):
    return " ".join(p for p in parts if p)


def _sub(facts, key):
    """A nested fact, {} when absent or empty."""
    value = facts.get(key)
    return value if value else {}


# --------------------------------------------------------------------------- what a run can say


def _sources(facts):
    sources = facts.get("sources") or []
    listed = []
    for s in sources:
        detail = [f"{s['n_rows']} rows"] if s.get("n_rows") is not None else []
        detail += [f"manifest {s['manifest']}"] if s.get("manifest") else []
        listed.append((s.get("name") or "unnamed") + (f" ({', '.join(detail)})" if detail else ""))
    noun = "data source" if len(sources) == 1 else "data sources"
    return f"{len(sources)} {noun}: " + "; ".join(listed) + "." if sources else ""


def _outcome(facts):
    return _sentence(facts.get("outcome"))


def _dates(facts):
    return _sentence(f"Dates of the data: {facts['dates']}") if facts.get("dates") else ""


def _eligibility(facts):
    e = _sub(facts, "eligibility")
    if e.get("n_included") is None:
        return ""
    excluded = e.get("excluded")
    if excluded is None:
        return f"{e['n_included']} cases included."
    reasons = "; ".join(f"{x.get('reason', '?')} ({x.get('n', '?')})" for x in excluded) or "none"
    n_out = sum(int(x.get("n", 0)) for x in excluded)
    return f"{e['n_included']} cases included, {n_out} excluded: {reasons}."


def _split_counts(facts, keep=lambda split: True):
    per_split = _sub(_sub(facts, "counts"), "per_split")
    parts = []
    for split, counts in per_split.items():
        if keep(split) and counts:
            inner = ", ".join(f"{c} {n}" for c, n in counts.items())
            parts.append(f"{split} {sum(int(n) for n in counts.values())} ({inner})")
    return "; ".join(parts)


def _is_external(split):
    return str(split).startswith("external")


def _per_split(facts):
    counts = _split_counts(facts)
    return f"Cases per split and class: {counts}." if counts else ""


def _flow(facts):
    per_split = _sub(_sub(facts, "counts"), "per_split")
    totals = {}
    for split, counts in per_split.items():
        if not _is_external(split):
            for c, n in (counts or {}).items():
                totals[c] = totals.get(c, 0) + int(n)
    by_class = ", ".join(f"{c} {n}" for c, n in totals.items())
    return _join([_eligibility(facts), f"Development cases per class: {by_class}." if totals else ""])


def _missing(facts):
    m = _sub(facts, "missing")
    modalities = ", ".join(f"{k} {v}" for k, v in _sub(m, "modalities").items())
    clinical = ", ".join(f"{k} {v}" for k, v in _sub(m, "clinical").items())
    return _join([f"Cases missing an image: {modalities}." if modalities else "",
                  f"Missing clinical values: {clinical}." if clinical else "",
                  _sentence(f"Handling: {m['handling']}") if m.get("handling") else ""])


def _characteristics(facts):
    return _join([_per_split(facts), _missing(facts)])


def _predictors(facts):
    model, m = _sub(facts, "model"), _sub(facts, "missing")
    backbones, modalities = model.get("backbones"), list(_sub(m, "modalities"))
    clinical = list(_sub(m, "clinical"))
    images = ""
    if backbones:
        on = f" on {_plain(modalities)}" if modalities else ""
        images = f"Image embeddings from {_plain(backbones)}{on}."
    elif modalities:
        images = f"Images: {_plain(modalities)}."
    return _join([images, f"Clinical columns: {_plain(clinical)}." if clinical else ""])


def _preprocessing(facts):
    return _sentence(facts.get("preprocessing"))


def _sample_size(facts):
    total = _split_counts(facts)
    return f"Cases analysed: {total}." if total else ""


def _partitioning(facts):
    v = _sub(facts, "validation")
    return _join([_sentence(f"Held-out split: {v['holdout']}") if v.get("holdout") else "",
                  _sentence(f"Cross-validation: {v['cv']}") if v.get("cv") else ""])


def _disjoint(facts):
    """Only when the recorded split says it is by patient; anything else is the authors' to state."""
    text = _partitioning(facts)
    return f"By patient. {text}" if "patient" in text.lower() else ""


def _pca(facts):
    pca = _sub(facts, "model").get("pca")
    return f"Per-block PCA: {_plain(pca)}." if pca not in (None, "", {}, []) else ""


def _ensemble(facts):
    model = _sub(facts, "model")
    if model.get("stack") is None:
        return ""
    if not model["stack"]:
        return "No stacked ensemble."
    meta = f" (meta-learner: {model['meta']})" if model.get("meta") else ""
    return f"Stacked ensemble of the base learners{meta}."


def _tuning(facts):
    grids = facts.get("tuning")
    if grids is None:       # not recorded; an empty dict is a recorded "no tuning"
        return ""
    if not grids:
        return "Hyperparameters fixed (no tuning grid)."
    return "Tuning grids: " + "; ".join(f"{name}: {_plain(grid)}" for name, grid in grids.items()) + "."


def _learners(facts):
    learners = _sub(facts, "model").get("learners")
    return f"Learners: {_plain(learners)}." if learners else ""


def _model_building(facts):
    cv = _sub(facts, "validation").get("cv")
    return _join([_learners(facts), _ensemble(facts), _tuning(facts),
                  _sentence(f"Internal validation: {cv}") if cv else ""])


def _balancing(facts):
    b = _sub(facts, "model").get("balancing")
    return _sentence(f"Class balancing: {b}") if b else ""


def _training(facts):
    return _join([_learners(facts), _tuning(facts), _balancing(facts)])


def _weights(facts):
    w = _plain(_sub(facts, "model").get("weights") or {})
    return f"Backbone weights: {w}." if w else ""


def _initialisation(facts):
    seed = f"Random seed {facts['seed']}." if facts.get("seed") is not None else ""
    return _join([_weights(facts), seed])


def _model_description(facts):
    model = _sub(facts, "model")
    backbones = f"Feature extractors: {_plain(model['backbones'])}." if model.get("backbones") else ""
    return _join([backbones, _weights(facts), _pca(facts), _learners(facts), _ensemble(facts)])


def _measures(facts):
    used = []
    if _known(_sub(facts, "internal").get("auc")) or _external(facts):
        used.append("ROC AUC with 95% confidence intervals")
    if _calibration(facts):
        used.append("calibration intercept and slope")
    if _operating_point(facts):
        used.append("performance at a chosen operating point")
    if facts.get("subgroups"):
        used.append("performance by subgroup")
    return f"Measures reported: {', '.join(used)}." if used else ""


def _internal(facts):
    i = _sub(facts, "internal")
    if not _known(i.get("auc")):
        return ""
    best = f"best model {i['best']}, " if i.get("best") else ""
    return f"Held-out set: {best}ROC AUC {_f(i['auc'])}{_ci(i.get('ci'))}."


def _external(facts):
    ext = facts.get("external") or []
    parts = [f"{e.get('name', '?')}: ROC AUC {_f(e['auc'])}{_ci(e.get('ci'))}"
             + (f", n={e['n']}" if e.get("n") is not None else "") for e in ext if _known(e.get("auc"))]
    return "External test: " + "; ".join(parts) + "." if parts else ""


def _calibration(facts):
    cal = facts.get("calibration") or {}
    parts = [f"{name} intercept {_f(c['intercept'], 2)}, slope {_f(c['slope'], 2)}"
             for name, c in cal.items() if _known(c.get("intercept")) and _known(c.get("slope"))]
    return "Calibration: " + "; ".join(parts) + "." if parts else ""


def _subgroups(facts):
    groups = facts.get("subgroups") or []
    return f"Subgroups analysed: {_plain(groups)}." if groups else ""


def _performance(facts):
    return _join([_internal(facts), _calibration(facts), _subgroups(facts)])


def _performance_all(facts):
    return _join([_internal(facts), _external(facts)])


def _heterogeneity(facts):
    external = _external(facts)
    return _join([_internal(facts), external]) if external else ""


def _eval_vs_dev(facts):
    if not any(_is_external(s) for s in _sub(_sub(facts, "counts"), "per_split")):
        return ""
    dev = _split_counts(facts, keep=lambda s: not _is_external(s))
    ext = _split_counts(facts, keep=_is_external)
    return f"Development: {dev}. External: {ext}."


def _operating_point(facts):
    op = _sub(facts, "operating_point")
    if not _known(op.get("threshold")):
        return ""
    rule = f", chosen by {op['rule']}" + (f" = {op['value']}" if op.get("value") is not None else "")
    return f"Class probabilities; decision threshold {_f(op['threshold'])}{rule if op.get('rule') else ''}."


def _input_handling(facts):
    handling = _sub(facts, "missing").get("handling")
    return _sentence(f"Missing inputs: {handling}") if handling else ""


def _software(facts):
    sw = {k: v for k, v in (facts.get("software") or {}).items() if v not in (None, "")}
    return "Software: " + ", ".join(f"{k} {v}" for k, v in sw.items()) + "." if sw else ""


def _code(facts):
    return f"Reproduce with: {facts['code']}." if facts.get("code") else ""


def _specification(facts):
    return _join([_model_description(facts), _code(facts)])


def _availability(facts):
    return _join([_code(facts), _software(facts)])


def _ablations(facts):
    ablations = facts.get("ablations") or []
    return f"Ablations: {_plain(ablations)}." if ablations else ""


def _explainability(facts):
    return _sentence(facts.get("explainability"))


def _uncertainty(facts):
    ci = [x for x in [_internal(facts), _external(facts)] if "95% CI" in x]
    return _join(ci)


# --------------------------------------------------------------------------- the items


_T, _C = TRIPOD, CLAIM
_ITEMS = (
    _Item(_T, "1", "Title"),
    _Item(_T, "2", "Abstract"),
    _Item(_T, "3a", "Healthcare context and rationale"),
    _Item(_T, "3b", "Target population, intended purpose and users"),
    _Item(_T, "3c", "Known health inequalities"),
    _Item(_T, "4", "Objectives"),
    _Item(_T, "5a", "Data sources", "provenance", _sources, "rationale and representativeness"),
    _Item(_T, "5b", "Dates of the data", "provenance", _dates),
    _Item(_T, "6a", "Study setting and centres"),
    _Item(_T, "6b", "Eligibility criteria", "summary", _eligibility, "the criteria behind the exclusions"),
    _Item(_T, "6c", "Treatments received"),
    _Item(_T, "7", "Data preparation and quality checking", "provenance", _preprocessing,
          "whether it was similar across sociodemographic groups"),
    _Item(_T, "8a", "Outcome definition", "summary", _outcome,
          "how and when it was assessed"),
    _Item(_T, "8b", "Outcome assessors"),
    _Item(_T, "8c", "Blinding of outcome assessment"),
    _Item(_T, "9a", "Choice of predictors"),
    _Item(_T, "9b", "Predictor definitions", "summary", _predictors, "how and when they were measured"),
    _Item(_T, "9c", "Predictor assessors"),
    _Item(_T, "10", "Sample size", "summary", _sample_size,
          "how the size was arrived at and why it suffices"),
    _Item(_T, "11", "Missing data", "summary", _missing, "reasons the data are missing"),
    _Item(_T, "12a", "Data use and partitioning", "comparison", _partitioning),
    _Item(_T, "12b", "Handling of predictors", "provenance", _pca),
    _Item(_T, "12c", "Model type, building steps, tuning, internal validation", "comparison",
          _model_building, "the rationale for the model type"),
    _Item(_T, "12d", "Heterogeneity across clusters"),
    _Item(_T, "12e", "Performance measures and plots", "curves", _measures, "the rationale"),
    _Item(_T, "12f", "Model updating (methods)"),
    _Item(_T, "12g", "How predictions were calculated", "provenance", _code),
    _Item(_T, "13", "Class imbalance", "provenance", _balancing, "why it was used"),
    _Item(_T, "14", "Fairness", "clinical", _subgroups, "the approach and its rationale"),
    _Item(_T, "15", "Model output and thresholds", "clinical", _operating_point, "the rationale"),
    _Item(_T, "16", "Training versus evaluation data"),
    _Item(_T, "17", "Ethical approval"),
    _Item(_T, "18a", "Funding"),
    _Item(_T, "18b", "Conflicts of interest"),
    _Item(_T, "18c", "Protocol"),
    _Item(_T, "18d", "Registration"),
    _Item(_T, "18e", "Data sharing"),
    _Item(_T, "18f", "Code sharing", "provenance", _code, "where the code is available"),
    _Item(_T, "19", "Patient and public involvement"),
    _Item(_T, "20a", "Participant flow", "summary", _flow),
    _Item(_T, "20b", "Participant characteristics", "summary", _characteristics,
          "demographics, key dates and differences across groups"),
    _Item(_T, "20c", "Evaluation versus development data", "external", _eval_vs_dev,
          "demographics and predictors"),
    _Item(_T, "21", "Participants and outcome events per analysis", "summary", _per_split),
    _Item(_T, "22", "Model specification", "provenance", _specification,
          "any restrictions on access or re-use"),
    _Item(_T, "23a", "Performance with confidence intervals, subgroups", "comparison", _performance),
    _Item(_T, "23b", "Heterogeneity in performance across clusters", "external", _heterogeneity),
    _Item(_T, "24", "Model updating (results)"),
    _Item(_T, "25", "Interpretation"),
    _Item(_T, "26", "Limitations"),
    _Item(_T, "27a", "Poor-quality or unavailable input data", "clinical", _input_handling,
          "how this should be assessed in practice"),
    _Item(_T, "27b", "User interaction and expertise"),
    _Item(_T, "27c", "Next steps for research"),

    _Item(_C, "1", "AI methodology and technology in title/abstract"),
    _Item(_C, "2", "Structured summary"),
    _Item(_C, "3", "Background, intended use and role of the AI"),
    _Item(_C, "4", "Aims, objectives and hypotheses"),
    _Item(_C, "5", "Prospective or retrospective"),
    _Item(_C, "6", "Study goal"),
    _Item(_C, "7", "Data sources", "provenance", _sources),
    _Item(_C, "8", "Inclusion and exclusion criteria", "summary", _eligibility,
          "location, dates, setting and demographics"),
    _Item(_C, "9", "Data pre-processing", "provenance", _preprocessing),
    _Item(_C, "10", "Selection of data subsets"),
    _Item(_C, "11", "De-identification"),
    _Item(_C, "12", "Missing data", "summary", _missing),
    _Item(_C, "13", "Image acquisition protocol"),
    _Item(_C, "14", "Reference standard definition"),
    _Item(_C, "15", "Rationale for the reference standard"),
    _Item(_C, "16", "Source of reference standard annotations"),
    _Item(_C, "17", "Annotation of the test set"),
    _Item(_C, "18", "Inter- and intra-rater variability"),
    _Item(_C, "19", "Assignment to partitions", "summary", _partitioning),
    _Item(_C, "20", "Level at which partitions are disjoint", "summary", _disjoint),
    _Item(_C, "21", "Intended sample size"),
    _Item(_C, "22", "Model description", "provenance", _model_description),
    _Item(_C, "23", "Software libraries, frameworks and packages", "provenance", _software),
    _Item(_C, "24", "Initialization of model parameters", "provenance", _initialisation),
    _Item(_C, "25", "Training approach", "comparison", _training, "data augmentation, if any"),
    _Item(_C, "26", "Selection of the final model"),
    _Item(_C, "27", "Ensembling", "comparison", _ensemble),
    _Item(_C, "28", "Metrics of model performance", "comparison", _measures),
    _Item(_C, "29", "Statistical significance and uncertainty", "significance", _uncertainty),
    _Item(_C, "30", "Robustness or sensitivity analysis", "ablations", _ablations),
    _Item(_C, "31", "Explainability or interpretability", "shap", _explainability,
          "how the explanations were validated"),
    _Item(_C, "32", "Evaluation on internal data", "comparison", _internal),
    _Item(_C, "33", "Testing on external data", "external", _external),
    _Item(_C, "34", "Clinical trial registration"),
    _Item(_C, "35", "Numbers included and excluded", "summary", _flow),
    _Item(_C, "36", "Characteristics of cases in each partition", "summary", _characteristics,
          "demographic and clinical characteristics"),
    _Item(_C, "37", "Performance metrics with statistical uncertainty", "comparison", _performance_all),
    _Item(_C, "38", "Diagnostic performance and its precision"),  # a threshold alone is not one
    _Item(_C, "39", "Failure analysis of incorrect results"),
    _Item(_C, "40", "Study limitations"),
    _Item(_C, "41", "Implications for practice"),
    _Item(_C, "42", "Protocol or further technical details"),
    _Item(_C, "43", "Availability of software, trained model and data", "provenance", _availability,
          "where the code, model and data can be obtained"),
    _Item(_C, "44", "Funding"),
)


def guideline_items(facts: dict | None) -> list[dict]:
    """Every TRIPOD+AI and CLAIM 2024 item, filled from what the run recorded or left to the authors.

    ``facts`` holds what a run knows (sources, eligibility, counts, missing, model, tuning,
    validation, internal, external, calibration, subgroups, operating_point, software, seed, code;
    optionally outcome, dates, preprocessing, ablations, explainability). Any key may be absent.
    """
    if facts is None:
        facts = {}
    if not isinstance(facts, dict):
        raise TypeError(f"facts must be a dict of what the run recorded, got {type(facts).__name__}")
    items = []
    for spec in _ITEMS:
        text = spec.fill(facts).strip() if spec.fill else ""
        if text and spec.also:
            text += f" Authors to add: {spec.also}."
        items.append({"guideline": spec.guideline, "item": spec.item, "topic": spec.topic,
                      "status": FILLED if text else AUTHORS, "text": text,
                      "section": spec.section if text else ""})
    return items


def _cell(value) -> str:
    """Markdown table cell: one line, pipes escaped, HTML characters as entities."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split())


def guideline_markdown(items: list[dict], title: str) -> str:
    """The items as a markdown table under a preamble naming the guidelines and what is left to do."""
    filled = {g: sum(1 for i in items if i["guideline"] == g and i["status"] == FILLED) for g in (_T, _C)}
    counts = {g: sum(1 for i in items if i["guideline"] == g) for g in (_T, _C)}
    lines = [
        f"# {' '.join(str(title).split())}",
        "",
        "Items of **TRIPOD+AI** (Collins et al., BMJ 2024;385:e078378) and "
        "**CLAIM 2024** (Tejani et al., Radiology: Artificial Intelligence 2024;6(4):e240300). "
        f"This run filled {filled[_T]} of {counts[_T]} TRIPOD+AI items and {filled[_C]} of {counts[_C]} "
        "CLAIM items from what it recorded, each pointing to the report section that holds it.",
        "",
        f"Every item marked \"{AUTHORS}\" asks for something a run cannot know (the reference standard, "
        "the intended use, ethics, limitations and more): the authors must complete those, check the "
        "filled ones against the manuscript, and add what each filled item asks beyond the run's facts.",
        "",
        "| Guideline | Item | Topic | Status | What the run reports | Report section |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i in items:
        cells = (i["guideline"], i["item"], i["topic"], i["status"], i["text"], i["section"])
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
