"""The `fit` stage: every learner and the stack, by patient-wise CV on the training split, then one
evaluation on the held-out split; the model fitted on the whole training split is saved.

Reads: <run>/fused/design.h5 + design.json.
Writes: <run>/models/<learner>.joblib (+ .json), cv_predictions.csv, holdout_predictions.csv,
        metrics.json, metrics.csv.
Config: fit, seed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time

import joblib
from threadpoolctl import threadpool_limits
import numpy as np
import pandas as pd

from models.build import STACK, FitSettings, build_estimator, learner_problems
from models.errors import ModelsError
from models.evaluate import cross_validate_learner, evaluate_holdout
from models.layout import FeatureLayout, ablation_layouts
from models.learners import without_cache
from pipeline import __version__, artifacts
from pipeline.design_store import write_json
from pipeline.errors import ConfigError
from pipeline.fingerprint import hash_json, library_versions
from pipeline.progress import progress_bar

log = logging.getLogger(__name__)
STAGE_VERSION = 1


def check_learners(fit):
    """The fit section's problems (learners, their parameters, tuning, balancing), all at once."""
    problems = learner_problems(**{k: fit[k] for k in ("learners", "stack", "stack_base", "meta", "params",
                                                       "meta_params", "tune", "balancing")})
    if problems:
        raise ConfigError("The study's fit section cannot be used:", problems)


def _fingerprint(study, design):
    return hash_json({"stage": "fit", "version": STAGE_VERSION, "design": design.meta["fingerprint"],
                      "fit": study.fit, "seed": study.seed})


def _evaluate(name, estimator, data, fit, seed, positive):
    X_train, y_train, g_train, folds, X_test, y_test = data
    cv = cross_validate_learner(estimator, X_train, y_train, folds, n_jobs=fit["n_jobs"], groups=g_train,
                                positive=positive)
    hold = evaluate_holdout(estimator, X_train, y_train, X_test, y_test, groups_train=g_train,
                            n_boot=fit["n_boot"], random_state=seed, positive=positive)
    fold_times = [f["fit_time"] for f in cv.folds]
    record = {"learner": name, "cv": cv.summary(), "cv_pooled": cv.pooled_metrics(y_train, positive),
              "holdout": hold.metrics, "holdout_ci": hold.ci,
              "fit_time": {"cv_fold_mean": float(np.mean(fold_times)), "final": hold.fit_time},
              "predict_time": hold.predict_time,
              "notes": sorted(set(hold.notes + [n for f in cv.folds for n in f.get("notes", [])]))}
    return record, cv, hold


def _prediction_rows(name, ids, y, proba, classes, extra):
    frame = pd.DataFrame({"case_id": ids, "learner": name, **extra, "y_true": y})
    for j, c in enumerate(classes):
        frame[f"proba:{c}"] = proba[:, j]
    return frame


def _save_model(study, name, hold, design, layout, fingerprint):
    path = artifacts.model_file(study.run_dir, name)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    joblib.dump(without_cache(hold.estimator), tmp)
    os.replace(tmp, path)
    write_json(path.with_suffix(".json"), {
        "learner": name, "classes": list(hold.classes), "positive": design.meta["positive"],
        "layout": layout.to_dict(), "columns": layout.columns, "fit": study.fit, "seed": study.seed,
        "fingerprint": fingerprint, "design_fingerprint": design.meta["fingerprint"],
        "blocks": design.meta["blocks"], "versions": library_versions(), "breastfuse": __version__})


def run_fit(study, design, force=False, show_progress=True):
    """Evaluate and save every learner, the stack and its ablations; return the metrics dict.

    Parallelism comes from joblib over folds; BLAS stays single-threaded, because threaded OpenBLAS
    next to busy workers measured 100x slower here (a 76 x 2048 SVD: 1 s instead of 10 ms).
    """
    cache = artifacts.models_dir(study.run_dir) / ".fusion-cache"
    shutil.rmtree(cache, ignore_errors=True)
    try:
        with threadpool_limits(limits=1):
            return _run_fit(study, design, force, show_progress, str(cache))
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _run_fit(study, design, force, show_progress, cache):
    fit = study.fit
    check_learners(fit)
    fingerprint = _fingerprint(study, design)
    out_json = artifacts.metrics_json(study.run_dir)
    if not force and out_json.is_file() and json.loads(out_json.read_text()).get("fingerprint") == fingerprint:
        log.info("fit: unchanged (fingerprint matches), nothing to do")
        return json.loads(out_json.read_text())
    artifacts.models_dir(study.run_dir).mkdir(parents=True, exist_ok=True)
    write_json(artifacts.study_record(study.run_dir),
               {**study.config, "manifest": str(study.manifest_path)})  # what predict re-runs
    layout, positive, seed = FeatureLayout.from_dict(design.layout), design.meta["positive"], study.seed
    settings = FitSettings.from_mapping(fit)
    train, test = ~design.is_test, design.is_test
    ids = design.frame.index.to_numpy()
    names = list(fit["learners"]) + ([STACK] if fit["stack"] else [])
    extra = ablation_layouts(layout, fit["ablations"]) if fit["stack"] else {}
    jobs = [(n, layout, True) for n in names] + [(f"{STACK}[{a}]", lay, False) for a, lay in extra.items()]
    results, cv_rows, hold_rows = {}, [], []
    start = time.perf_counter()
    with progress_bar(len(jobs), "fit", "model", show_progress) as advance:
        for label, lay, is_main in jobs:
            X = design.frame[lay.columns]
            data = (X[train], design.y[train], design.groups[train], design.train_folds(), X[test], design.y[test])
            estimator = build_estimator(label if is_main else STACK, lay, settings, seed, memory=cache)
            try:
                record, cv, hold = _evaluate(label, estimator, data, fit, seed, positive)
            except ModelsError as exc:
                raise ConfigError(f"fit: learner '{label}' cannot be evaluated on this design: {exc}") from None
            record["ablation"] = None if is_main else label[len(STACK) + 1:-1]
            results[label] = record
            for r, proba in enumerate(cv.oof_proba):
                seen = ~np.isnan(proba).any(1)
                cv_rows.append(_prediction_rows(label, ids[train][seen], design.y[train][seen], proba[seen],
                                                cv.classes, {"repeat": r}))
            hold_rows.append(_prediction_rows(label, ids[test], design.y[test], hold.proba, hold.classes, {}))
            if is_main:
                _save_model(study, label, hold, design, lay, fingerprint)
            log.info("fit: %s: CV AUC %.3f ± %.3f, held-out AUC %.3f", label, record["cv"]["roc_auc"]["mean"],
                     record["cv"]["roc_auc"]["sd"], record["holdout"]["roc_auc"])
            advance(1)
    _write_predictions(study, cv_rows, hold_rows)
    metrics = {"stage": "fit", "stage_version": STAGE_VERSION, "fingerprint": fingerprint,
               "design_fingerprint": design.meta["fingerprint"], "classes": design.classes,
               "positive": positive, "n_train": int(train.sum()), "n_test": int(test.sum()),
               "learners": results, "config": fit, "seed": seed, "versions": library_versions(),
               "elapsed_seconds": time.perf_counter() - start}
    _write_metrics_csv(study, results)
    write_json(out_json, metrics)
    return metrics


def _write_predictions(study, cv_rows, hold_rows):
    folder = artifacts.models_dir(study.run_dir)
    for name, rows in (("cv_predictions.csv", cv_rows), ("holdout_predictions.csv", hold_rows)):
        artifacts.write_csv(folder / name, pd.concat(rows, ignore_index=True))


def _write_metrics_csv(study, results):
    rows = []
    for name, rec in results.items():
        for metric, value in rec["holdout"].items():
            low, high = rec["holdout_ci"].get(metric, (None, None))
            cv = rec["cv"].get(metric, {})
            rows.append({"learner": name, "ablation": rec["ablation"], "metric": metric,
                         "cv_mean": cv.get("mean"), "cv_sd": cv.get("sd"), "holdout": value,
                         "holdout_ci_low": low, "holdout_ci_high": high})
    artifacts.write_csv(artifacts.models_dir(study.run_dir) / "metrics.csv", pd.DataFrame(rows))
