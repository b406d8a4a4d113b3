"""The evaluate stage's work: score the saved models on the held-out split and on each cohort, then
hand the probabilities to ``models.validation`` and write what comes back.

Scored sets are the held-out split (named ``internal``) and each cohort; every set gets the same
tables, so the report and the standalone page read one shape.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)


def _long_predictions(ids, y, probas, classes):
    frames = []
    for learner, proba in probas.items():
        frame = pd.DataFrame({"case_id": list(ids), "learner": learner,
                              "y_true": list(y) if y is not None else [""] * len(ids)})
        for j, c in enumerate(classes):
            frame[f"proba:{c}"] = proba[:, j]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _subgroup_values(frame, column):
    """A manifest column as numbers when every filled cell is one, else as text ('' = missing)."""
    cells = frame[column]
    numbers = pd.to_numeric(cells.replace("", np.nan), errors="coerce")
    filled = cells.astype(str) != ""
    if filled.any() and numbers[filled].notna().all():
        return numbers.to_numpy(float)
    return cells.astype(object).where(filled, None).to_numpy(object)


def _focus(learners, metrics):
    """The learners the decision curve and subgroups show: the stack, and the base learner with the
    best cross-validated AUC on training (never picked on a test set)."""
    base = [n for n in learners if n != "stack"]
    best = max(base, key=lambda n: metrics["learners"][n]["cv"]["roc_auc"]["mean"]) if base else None
    return [n for n in ("stack", best) if n is not None and n in learners]


class Scorer:
    """The run's saved models, loaded once, and what is fixed for every set (classes, thresholds)."""

    def __init__(self, ctx):
        from models.clinical import parse_operating_point  # noqa: PLC0415
        from models.validation import oof_probabilities, operating_points  # noqa: PLC0415

        self.ctx, self.study = ctx, ctx.study
        self.design = ctx.inputs.design()
        self.metrics = ctx.inputs.read("fit:metrics")
        self.classes, self.positive = list(self.design.classes), self.design.meta["positive"]
        self.learners = [n for n, r in self.metrics["learners"].items()
                         if r.get("ablation") is None and ctx.inputs.has_model(n)]
        if not self.learners:
            raise ConfigError("evaluate: the fit saved no model to evaluate")
        self.settings = self.study.evaluate.validation_settings(self.study.seed)
        op = parse_operating_point(self.study.evaluate.operating_point)
        cv = ctx.inputs.read("fit:cv_predictions")
        self.points = {}
        for n in self.learners:
            y, proba = oof_probabilities(cv, n, self.classes)
            self.points[n] = operating_points(y, proba, self.classes, self.positive, op)
        self.models = {n: ctx.inputs.model(n) for n in self.learners}
        self.focus = _focus(self.learners, self.metrics)

    def predict(self, learner, frame):
        """One saved model's probabilities on design rows, columns in the run's class order."""
        from pipeline.cohort import model_rows  # noqa: PLC0415

        model, info = self.models[learner]
        proba = model.predict_proba(model_rows(frame, info, learner))
        return np.asarray(proba, float)[:, [list(info["classes"]).index(c) for c in self.classes]]

    def probabilities(self, frame):
        return {n: self.predict(n, frame) for n in self.learners}

    def score(self, name, ids, y, groups, probas, columns):
        """One set's results and tables; ``y`` None: predictions only."""
        from models import validation as v  # noqa: PLC0415
        from models.clinical import decision_curve  # noqa: PLC0415

        s, classes, positive = self.settings, self.classes, self.positive
        tables = {"predictions": _long_predictions(ids, y, probas, classes)}
        if y is None:
            return {"n": len(ids), "note": "the manifest has no labels: predictions only, nothing could be scored"}, tables
        y = np.asarray(y, dtype=object)
        results = {n: v.learner_evaluation(y, probas[n], classes, positive, groups, self.points[n], s)
                   for n in self.learners}
        tables["metrics_table"] = pd.DataFrame(
            [{"learner": n, "metric": m, "value": r["metrics"][m], "ci_low": r["ci"][m][0], "ci_high": r["ci"][m][1]}
             for n, r in results.items() for m in r["metrics"]])
        rows, curves, subgroups = [], [], []
        for t in v.targets(classes, positive):
            is_pos = y == t
            for n, r in results.items():
                op = r["targets"][t].get("operating_point")
                if op:
                    rows.append({"learner": n, "target": t, "rule": op["rule"], "threshold": op["threshold"],
                                 **{k: op[k] for k in ("sensitivity", "specificity", "ppv", "npv")},
                                 **{f"{k}_{e}": op[f"{k}_ci"][i] for k in ("sensitivity", "specificity", "ppv", "npv")
                                    for i, e in enumerate(("low", "high"))}, **op["confusion"]})
            if is_pos.all() or not is_pos.any():
                continue
            curve = decision_curve(is_pos, {n: probas[n][:, classes.index(t)] for n in self.focus})
            curve.insert(0, "target", t)
            curves.append(curve)
            for n in self.focus[:1]:
                table = v.subgroups(is_pos, probas[n][:, classes.index(t)], columns,
                                    self.points[n][t]["threshold"], groups, s, self.study.evaluate.subgroup_bands)
                if len(table):
                    table.insert(0, "learner", n)
                    table.insert(1, "target", t)
                    subgroups.append(table)
        tables["operating_points"] = pd.DataFrame(rows)
        tables["decision_curve"] = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
        tables["subgroups"] = pd.concat(subgroups, ignore_index=True) if subgroups else pd.DataFrame()
        counts = pd.Series(y).value_counts()
        summary = {"n": int(len(y)), "n_patients": int(len(set(groups))),
                   "class_counts": {c: int(counts.get(c, 0)) for c in classes}, "learners": results,
                   "focus": self.focus}
        return summary, tables


def _missing_modality(scorer, rows, y, groups, probas):
    """The stack with each modality withheld from every held-out case, beside the ablation refits
    (``probas``: every learner's probabilities on ``rows`` with all modalities)."""
    from models import validation as v  # noqa: PLC0415
    from models.clinical import bootstrap_interval  # noqa: PLC0415
    from models.metrics import metrics_of_rows  # noqa: PLC0415

    layout = scorer.design.meta["layout"]
    modalities = sorted({b.partition("/")[0] for b in layout["blocks"]})
    learner = "stack" if "stack" in scorer.models else scorer.focus[0]
    if len(modalities) < 2:
        return pd.DataFrame(), {"note": "one modality: nothing to withhold"}
    s, classes, positive = scorer.settings, scorer.classes, scorer.positive

    def auc_row(what, proba, source):
        stat = metrics_of_rows(y, proba, classes, positive, ["roc_auc"])
        low, high = bootstrap_interval(lambda idx: stat(idx)["roc_auc"], len(y), groups=groups, strata=y,
                                       n_boot=s.n_boot, random_state=s.seed, level=s.level)
        return {"model": what, "withheld": source, "auc": stat(np.arange(len(y)))["roc_auc"],
                "auc_low": low, "auc_high": high, "interval": "patient-level bootstrap"}

    out = [auc_row(f"{learner} (all modalities)", probas[learner], "")]
    for m in modalities:
        row = auc_row(f"{learner}, {m} withheld", scorer.predict(learner, v.withheld(rows, layout, m)), m)
        row["auc_change"] = row["auc"] - out[0]["auc"]
        out.append(row)
    for name, rec in scorer.metrics["learners"].items():
        if (rec.get("ablation") or "").startswith("modality:"):
            low, high = rec["holdout_ci"]["roc_auc"]
            out.append({"model": f"{name} (refitted on one modality)", "withheld": "", "auc": rec["holdout"]["roc_auc"],
                        "auc_low": low, "auc_high": high, "interval": "stratified bootstrap (fit)"})
    return pd.DataFrame(out), {"learner": learner, "modalities": modalities}


def _check_subgroup_columns(study, manifest):
    missing = [c for c in study.evaluate.subgroups if c not in manifest.frame.columns]
    if missing:
        raise ConfigError(f"evaluate.subgroups: column(s) {', '.join(missing)} are not in the manifest "
                          f"{manifest.path}", hint="Name clinical or manifest columns.")


def _write(ctx, name, tables):
    for artifact, table in tables.items():
        if artifact in ("predictions", "metrics_table", "operating_points", "decision_curve", "subgroups",
                        "excluded"):
            ctx.out.write_csv(artifact, table, cohort=name)


def _write_pages(ctx, evaluation, pages, internal_tables):
    """A standalone page per cohort (the external-validation section of that cohort alone)."""
    import json  # noqa: PLC0415
    from datetime import datetime, timezone  # noqa: PLC0415

    from reports import render_report  # noqa: PLC0415
    from reports.evaluation_sections import cohort_page  # noqa: PLC0415

    # the page reads the evaluation as the report does: through JSON (plain types only)
    plain = json.loads(json.dumps(evaluation, default=float))
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for name, tables in pages.items():
        ev = {"status": "ok", "data": plain, "tables": {evaluation["internal"]: internal_tables, name: tables}}
        page = cohort_page(ev, name, f"BreastFuse external validation: {ctx.study.name}, cohort {name}", generated)
        ctx.out.write_text("page", render_report(page), cohort=name)


def evaluate_run(ctx, internal, cohort_folder):
    from models import validation as v  # noqa: PLC0415
    from pipeline.cohort import cohort_labels, embed_cohort  # noqa: PLC0415

    scorer = Scorer(ctx)
    study, design, classes = ctx.study, scorer.design, scorer.classes
    manifest = ctx.manifest
    _check_subgroup_columns(study, manifest)
    by_case = manifest.frame.set_index("case_id")
    test = design.is_test
    ids, y, groups = design.frame.index[test], np.asarray(design.y[test], object), design.groups[test]
    rows = design.frame.loc[ids]
    columns = {c: _subgroup_values(by_case.loc[ids], c) for c in study.evaluate.subgroups}
    probas = scorer.probabilities(rows)
    sets, summary = {}, {}
    sets[internal], tables = scorer.score(internal, ids, y, groups, probas, columns)
    tables["excluded"] = pd.DataFrame(columns=["case_id", "reason"])
    internal_tables = tables
    _write(ctx, internal, tables)
    missing, sets[internal]["missing_modality"] = _missing_modality(scorer, rows, y, groups, probas)
    ctx.out.write_csv("missing_modality", missing)
    pages = {}
    # the held-out AUC and its bootstrap draws, once: every cohort's change is measured against them
    internal_auc = {n: v.auc_with_draws(y, probas[n], classes, scorer.positive, groups, scorer.settings)
                    for n in scorer.learners} if study.evaluate.cohorts else {}
    for cohort in study.evaluate.cohorts:
        name = cohort["name"]
        embedded = embed_cohort(study, ctx.run_record, cohort["manifest"], cohort_folder(study.run_dir, name),
                                [study.run_dir], show_progress=ctx.show_progress)
        frame = embedded.manifest.frame
        _check_subgroup_columns(study, embedded.manifest)
        labels, excluded = cohort_labels(study, embedded.manifest, classes)
        keep = np.ones(len(frame), bool) if labels is None else np.isin(labels, classes)
        ids_c = frame["case_id"].to_numpy()[keep]
        groups_c = frame[study.patient_column].to_numpy()[keep]
        cohort_columns = {c: _subgroup_values(frame[keep], c) for c in study.evaluate.subgroups}
        probas_c = scorer.probabilities(embedded.frame.loc[ids_c])
        sets[name], tables = scorer.score(name, ids_c, None if labels is None else labels[keep], groups_c,
                                          probas_c, cohort_columns)
        sets[name]["excluded"] = [{"case_id": c, "reason": r} for c, r in excluded]
        sets[name]["manifest"] = cohort["manifest"]
        sets[name]["image_notes"] = embedded.notes
        tables["excluded"] = pd.DataFrame(sets[name]["excluded"], columns=["case_id", "reason"])
        if labels is not None and len(ids_c):
            sets[name]["auc_change"] = {
                n: v.auc_difference(internal_auc[n], (labels[keep], probas_c[n], groups_c), classes, scorer.positive,
                                    scorer.settings) for n in scorer.learners}
        _write(ctx, name, tables)
        pages[name] = tables
        log.info("evaluate: cohort %s: %d case(s) scored, %d left out", name, len(ids_c), len(excluded))
    evaluation = {
        "stage": "evaluate", "fingerprint": ctx.fingerprint, "fit_fingerprint": ctx.inputs.record("fit").fingerprint,
        "classes": classes, "positive": scorer.positive, "learners": scorer.learners, "focus": scorer.focus,
        "operating_points": scorer.points, "settings": ctx.study.config_of(["evaluate"])["evaluate"],
        "internal": internal, "sets": sets}
    ctx.out.write_json("evaluation", evaluation)
    _write_pages(ctx, evaluation, pages, internal_tables)
    for name, rec in sets.items():
        headline = scorer.focus[0]
        auc = rec.get("learners", {}).get(headline, {}).get("metrics", {}).get("roc_auc")
        summary[name] = {"n": rec.get("n", 0), "learner": headline, "auc": auc, "note": rec.get("note")}
    return {"sets": summary}
