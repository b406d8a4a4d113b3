"""Where every artifact of a run lives: decided here once, not inside the computations."""

import os
from pathlib import Path


def write_atomic(path, text):
    """Write a text artifact whole or not at all (a temporary file beside it, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(path, frame):
    """A table as CSV, atomically (no index column)."""
    write_atomic(path, frame.to_csv(index=False))


def features_dir(run_dir, modality):
    return Path(run_dir) / "features" / modality


def features_file(run_dir, modality, backbone):
    """Final embeddings of one (modality, backbone)."""
    return features_dir(run_dir, modality) / f"{backbone}.h5"


def partial_features_file(run_dir, modality, backbone):
    """Checkpoint of an unfinished extraction, merged by the next run."""
    return features_dir(run_dir, modality) / f"{backbone}.partial.h5"


def fused_dir(run_dir):
    return Path(run_dir) / "fused"


def design_file(run_dir):
    """The fused design matrix, labels, groups, split and folds."""
    return fused_dir(run_dir) / "design.h5"


def design_json(run_dir):
    """Block layout, class mapping, exclusions, split sizes, PCA diagnostics, fingerprint."""
    return fused_dir(run_dir) / "design.json"


def models_dir(run_dir):
    return Path(run_dir) / "models"


def model_file(run_dir, learner):
    return models_dir(run_dir) / f"{learner}.joblib"


def metrics_json(run_dir):
    return models_dir(run_dir) / "metrics.json"


def study_record(run_dir):
    """The effective study config fit used (command-line flags included): predict, explain and the
    report's reproduce commands read it."""
    return models_dir(run_dir) / "study.json"


def reports_dir(run_dir):
    return Path(run_dir) / "reports"


def occlusion_file(run_dir):
    """Occlusion maps of the explained held-out cases (the explain stage), read by the report."""
    return reports_dir(run_dir) / "occlusion.npz"
