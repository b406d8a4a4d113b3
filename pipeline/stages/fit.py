"""The `fit` stage: every learner and the stack, by patient-wise CV on the training split, then one
evaluation on the held-out split; the model fitted on the whole training split is saved.

Model building lives in ``models`` (one imblearn Pipeline per learner, the stack, its ablations);
this module only hands it the design and writes what comes back. All models, metrics and
predictions of one fit are committed together: a fit killed half-way leaves the previous one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from models.layout import ABLATIONS
from pipeline import settings as s
from pipeline.cluster import EXPECTED, scheduler_ok
from pipeline.contract import Artifact, Flag, Stage

log = logging.getLogger(__name__)
VERSION = 2     # 2: svm calibration kept monotone; per-fold metrics, checks and warnings in metrics.json
STACK = "stack"


def _every_learner():
    from models.learners import LEARNERS  # noqa: PLC0415  (the registry, not a copy of it)

    return list(LEARNERS)


def _pca(v):
    return v is None or s.pos_int(v) or s.fraction(v)


def _mapping(v):
    return isinstance(v, dict)


@dataclass(frozen=True)
class FitSettings:
    learners: list = s.setting(s.Lazy(_every_learner), s.text_list, "a list of learner names", "base learners compared (default: every one)")
    stack: bool = s.setting(True, s.boolean, "true or false", "add the stacking meta-learner")
    stack_base: list = s.setting(["knn", "svm", "rf", "et", "mlp"], s.text_list, "a list of learner names",
                                 "the stack's base learners")
    meta: str = s.setting("lr", s.text, "a meta-learner name", "the stack's meta-learner")
    pca_components: object = s.setting(64, _pca, "null, a positive integer or a fraction in (0, 1)",
                                       "per-block PCA: components, or variance kept")
    balancing: str = s.setting("smote", s.text, "a balancing name", "class balancing per fold")
    k_neighbors: int = s.setting(5, s.pos_int, "a positive integer", "SMOTE neighbours")
    params: dict = s.setting({}, _mapping, "a mapping of learner to settings",
                             "learner settings, e.g. {rf: {n_estimators: 500}}")
    meta_params: dict = s.setting({}, _mapping, "a mapping", "meta-learner settings")
    ablations: list = s.setting(list(ABLATIONS), lambda v: isinstance(v, list) and all(a in ABLATIONS for a in v),
                                f"a list drawn from {', '.join(ABLATIONS)}", "stack refits on subsets of blocks")
    tune: dict = s.setting({}, lambda v: _mapping(v) and all(isinstance(d, dict) for d in v.values()),
                           "a mapping of learner to {parameter: [values]}",
                           "randomized search nested in each training fold, e.g. {rf: {max_depth: [4, 8, null]}}")
    tune_iter: int = s.setting(10, s.pos_int, "a positive integer", "candidates tried per tuned learner")
    n_jobs: int = s.setting(2, lambda v: s.is_int(v) and (v > 0 or v == -1), "a positive integer or -1",
                            "parallel fits", neutral=True)
    scheduler: str = s.setting("local", lambda v: scheduler_ok(v), EXPECTED,
                               "where the fits run: local (n_jobs processes here), dask-local:N, or a Dask "
                               "scheduler address tcp://host:8786", neutral=True)
    cache: bool = s.setting(True, s.boolean, "true or false",
                            "keep each fit's predictions in <run>/.cache/fit under the fingerprint of its learner, "
                            "columns and rows, so re-runs and ablations read them instead of fitting again",
                            neutral=True)
    n_boot: int = s.setting(1000, lambda v: s.is_int(v) and v >= 100, "an integer >= 100",
                            "bootstrap resamples for held-out intervals")

    def problems(self, where):
        """Learners, their parameters, meta-learner and balancing against the real registries."""
        from models.build import learner_problems  # noqa: PLC0415

        return learner_problems(learners=self.learners, stack=self.stack, stack_base=self.stack_base,
                                meta=self.meta, params=self.params, meta_params=self.meta_params, tune=self.tune,
                                balancing=self.balancing, where=where.rstrip("."))

    def model_settings(self):
        from models.build import FitSettings as ModelSettings  # noqa: PLC0415

        return ModelSettings.from_mapping(s.as_dict(self))


def _prediction_rows(name, ids, y, proba, classes, extra):
    import pandas as pd  # noqa: PLC0415

    frame = pd.DataFrame({"case_id": ids, "learner": name, **extra, "y_true": y})
    for j, c in enumerate(classes):
        frame[f"proba:{c}"] = proba[:, j]
    return frame


def _metrics_rows(results):
    rows = []
    for name, rec in results.items():
        for metric, value in rec["holdout"].items():
            low, high = rec["holdout_ci"].get(metric, (None, None))
            cv = rec["cv"].get(metric, {})
            rows.append({"learner": name, "ablation": rec["ablation"], "metric": metric,
                         "cv_mean": cv.get("mean"), "cv_sd": cv.get("sd"), "holdout": value,
                         "holdout_ci_low": low, "holdout_ci_high": high})
    return rows


def _headline(results):
    """The main learners' key figures, for the table the command prints (the report has everything)."""
    rows = []
    for name, rec in results.items():
        if rec["ablation"] is None:
            cv = rec["cv"]["roc_auc"]
            rows.append({"learner": name, "cv_auc": cv["mean"], "cv_sd": cv["sd"],
                         "holdout_auc": rec["holdout"]["roc_auc"], "ci": list(rec["holdout_ci"]["roc_auc"]),
                         "balanced_accuracy": rec["holdout"]["balanced_accuracy"],
                         "warnings": rec.get("warnings", [])})
    return rows


def _message(outcome):
    from pipeline.console import format_metrics_table  # noqa: PLC0415

    return f"{format_metrics_table(outcome.summary['headline'])}\nfit: models and metrics in {outcome.folder}"


# what metrics.json keeps of each CV fold (models.evaluate's records also hold timings and notes)
_FOLD_KEYS = ("repeat", "fold", "n_train", "n_val", "metrics", "auc_ci", "rank_correlation", "flags")


def _record(label, cv, hold, y_train, positive):
    import numpy as np  # noqa: PLC0415

    fold_times = [f["fit_time"] for f in cv.folds]
    return {"learner": label, "cv": cv.summary(), "cv_pooled": cv.pooled_metrics(y_train, positive),
            "holdout": hold.metrics, "holdout_ci": hold.ci,
            "fit_time": {"cv_fold_mean": float(np.mean(fold_times)), "final": hold.fit_time},
            "predict_time": hold.predict_time,
            "notes": sorted(set(hold.notes + [n for f in cv.folds for n in f.get("notes", [])])),
            "folds": [{k: f[k] for k in _FOLD_KEYS} for f in cv.folds], "warnings": cv.warnings()}


def _dask_backend(distributed):
    """On a cluster, every fit runs through joblib's Dask backend, which sends the design to the
    workers once for the whole pool of fits (it scatters each large argument once per call). An
    explicit broadcast ``scatter=`` was seen to hang the workers in get_data."""
    import contextlib  # noqa: PLC0415

    if not distributed:
        return contextlib.nullcontext()
    from joblib import parallel_config  # noqa: PLC0415

    return parallel_config(backend="dask")


def _on_cluster(ctx):
    """(context manager yielding the cluster's description or None): fit.scheduler's cluster."""
    import contextlib  # noqa: PLC0415

    from pipeline.cluster import describe, is_local  # noqa: PLC0415

    scheduler = ctx.study.fit.scheduler

    @contextlib.contextmanager
    def cluster():
        if is_local(scheduler):
            yield None
            return
        from pipeline.cluster import dask_client  # noqa: PLC0415

        with dask_client(scheduler, "fit.scheduler") as client:
            yield describe(client)
    return cluster()


def _jobs(fit, settings, layout, seed):
    """(jobs for models.cross_fit, which labels are saved models): every learner and the stack on
    the whole layout, then the stack on each ablation's blocks."""
    from models.build import build_estimator  # noqa: PLC0415
    from models.cross_fit import Job  # noqa: PLC0415
    from models.layout import ablation_layouts  # noqa: PLC0415

    names = list(fit.learners) + ([STACK] if fit.stack else [])
    extra = ablation_layouts(layout, fit.ablations) if fit.stack else {}
    jobs = [Job(n, layout.columns, build_estimator(n, layout, settings, seed), keep=True) for n in names]
    jobs += [Job(f"{STACK}[{a}]", lay.columns, build_estimator(STACK, lay, settings, seed)) for a, lay in extra.items()]
    return jobs, {n: layout for n in names}


def fit_cache(ctx):
    """The run's cache of fits' predictions (<run>/.cache/fit), or None when fit.cache is off."""
    from models.prediction_cache import PredictionCache  # noqa: PLC0415

    return PredictionCache(ctx.study.run_dir / ".cache" / "fit" if ctx.study.fit.cache else None)


def _fit_all(ctx, design, distributed=False):
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    from models.cross_fit import Comparison, FitFailed, PlannedFits  # noqa: PLC0415
    from models.errors import ModelsError  # noqa: PLC0415
    from models.persistence import save_model  # noqa: PLC0415
    from pipeline.errors import ConfigError  # noqa: PLC0415
    from pipeline.fingerprint import library_versions  # noqa: PLC0415
    from pipeline.progress import progress_bar  # noqa: PLC0415
    from pipeline.transaction import crash_point  # noqa: PLC0415

    fit, seed, layout = ctx.study.fit, ctx.study.seed, design.layout
    positive = design.meta["positive"]
    train, test = ~design.is_test, design.is_test
    ids = design.frame.index.to_numpy()
    jobs, saved = _jobs(fit, fit.model_settings(), layout, seed)
    comparison = Comparison(design.frame[train], design.y[train], design.groups[train], design.train_folds(),
                            design.frame[test], design.y[test], positive, seed, fit.n_boot)
    crash_point("fit:before-models")
    try:
        planned = PlannedFits(jobs, comparison, fit_cache(ctx))
        counts = planned.counts
        log.info("fit: %d models ask for %d fits: %d distinct, %d from the cache, %d to fit", len(jobs),
                 counts["requested"], counts["distinct"], counts["cached"], counts["fitted"])
        with progress_bar(counts["fitted"], "fit", "fit", ctx.show_progress) as advance, _dask_backend(distributed):
            evaluated = planned.run(n_jobs=-1 if distributed else fit.n_jobs, progress=advance)
    except FitFailed as exc:
        raise ConfigError(f"fit: learner '{exc.label}' cannot be evaluated on this design: {exc.reason}") from None
    except ModelsError as exc:
        raise ConfigError(f"fit: the models cannot be evaluated on this design: {exc}") from None
    results, cv_rows, hold_rows = {}, [], []
    for job in jobs:
        cv, hold = evaluated[job.label]
        record = _record(job.label, cv, hold, design.y[train], positive)
        record["ablation"] = None if job.label in saved else job.label[len(STACK) + 1:-1]
        results[job.label] = record
        for r, proba in enumerate(cv.oof_proba):
            seen = ~np.isnan(proba).any(1)
            cv_rows.append(_prediction_rows(job.label, ids[train][seen], design.y[train][seen], proba[seen],
                                            cv.classes, {"repeat": r}))
        hold_rows.append(_prediction_rows(job.label, ids[test], design.y[test], hold.proba, hold.classes, {}))
        if job.label in saved:
            lay = saved[job.label]
            save_model(hold.estimator, ctx.out.path("model", learner=job.label))
            ctx.out.write_json("model_info", {
                "learner": job.label, "classes": list(hold.classes), "positive": positive,
                "layout": lay.to_dict(), "columns": lay.columns, "fit": ctx.study.config_of(["fit"])["fit"],
                "seed": seed, "fingerprint": ctx.fingerprint, "design_fingerprint": design.meta["fingerprint"],
                "blocks": design.meta["blocks"], "versions": library_versions()}, learner=job.label)
            crash_point("fit:after-model")
        log.info("fit: %s: CV AUC %.3f ± %.3f, held-out AUC %.3f", job.label, record["cv"]["roc_auc"]["mean"],
                 record["cv"]["roc_auc"]["sd"], record["holdout"]["roc_auc"])
    ctx.out.write_csv("cv_predictions", pd.concat(cv_rows, ignore_index=True))
    ctx.out.write_csv("holdout_predictions", pd.concat(hold_rows, ignore_index=True))
    ctx.out.write_csv("metrics_table", pd.DataFrame(_metrics_rows(results)))
    return results, counts


def compute(ctx):
    import time  # noqa: PLC0415

    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    from models.diagnostics import pca_diagnostics  # noqa: PLC0415
    from pipeline.fingerprint import library_versions  # noqa: PLC0415

    design = ctx.inputs.design()
    start = time.perf_counter()
    # BLAS stays single-threaded: threaded OpenBLAS next to busy joblib workers measured 100x
    # slower here (a 76 x 2048 SVD: 1 s instead of 10 ms); parallelism comes from the fits.
    with threadpool_limits(limits=1), _on_cluster(ctx) as cluster:
        results, counts = _fit_all(ctx, design, distributed=cluster is not None)
        ctx.out.write_json("pca", pca_diagnostics(design.frame, design.layout, ~design.is_test))
    metrics = {"stage": "fit", "stage_version": VERSION, "fingerprint": ctx.fingerprint,
               "design_fingerprint": design.meta["fingerprint"], "classes": design.classes,
               "positive": design.meta["positive"], "n_train": int((~design.is_test).sum()),
               "n_test": int(design.is_test.sum()), "learners": results,
               "config": ctx.study.config_of(["fit"])["fit"], "seed": ctx.study.seed,
               "versions": library_versions(), "elapsed_seconds": time.perf_counter() - start, "fits": counts}
    ctx.out.write_json("metrics", metrics)
    return {"headline": _headline(results), "learners": [n for n, r in results.items() if r["ablation"] is None],
            "ablations": [n for n, r in results.items() if r["ablation"] is not None],
            "n_train": metrics["n_train"], "n_test": metrics["n_test"], "fits": counts,
            **({"cluster": cluster} if cluster else {})}


STAGE = Stage(
    name="fit", version=VERSION, folder="models", noun="fitted models",
    summary="cross-validate, evaluate on the held-out split and save every learner",
    description="For every learner (knn, svm, rf, et, mlp, lr, xgb) and the stack: one imblearn pipeline "
                "(per-block PCA, scaling, clinical encoding, SMOTE, estimator) fitted inside the training folds "
                "only; patient-wise CV, one held-out evaluation with bootstrap intervals, then the model fitted "
                "on the whole training split is saved in <run>/models/.",
    config=("fit", "seed"),
    reads=("fuse:design", "fuse:design_meta"),
    writes=(Artifact("model", "{learner}.skops", "a fitted learner (or the stack), loadable only as known types"),
            Artifact("model_info", "{learner}.json", "its classes, layout, columns, settings"),
            Artifact("metrics", "metrics.json", "CV and held-out metrics of every learner and ablation"),
            Artifact("metrics_table", "metrics.csv", "the same as a table"),
            Artifact("cv_predictions", "cv_predictions.csv", "out-of-fold probabilities"),
            Artifact("holdout_predictions", "holdout_predictions.csv", "held-out probabilities"),
            Artifact("pca", "pca.json", "explained variance per block on the training rows (diagnostic)")),
    compute=compute, settings=FitSettings, message=_message,
    flags=(Flag("--n-jobs", "fit.n_jobs", "parallel fits (default 2)", type=int),),
)
