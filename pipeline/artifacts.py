"""Where every artifact of a run lives: decided here once, not inside the computations."""

from pathlib import Path


def features_dir(run_dir, modality):
    return Path(run_dir) / "features" / modality


def features_file(run_dir, modality, backbone):
    """Final embeddings of one (modality, backbone)."""
    return features_dir(run_dir, modality) / f"{backbone}.h5"


def partial_features_file(run_dir, modality, backbone):
    """Checkpoint of an unfinished extraction, merged by the next run."""
    return features_dir(run_dir, modality) / f"{backbone}.partial.h5"
