"""The example studies stay honest on the real data: related images share a fold, leaks are flagged.

Runs fuse's own split on the real manifests (no embedding needed), so the guarantee is checked on
the BUSI near-duplicate groups and the mini-MIAS left/right pairs as they really are.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.splits import merged_groups
from pipeline.config import load_study
from pipeline.manifest import effective_labels, load_manifest
from pipeline.stages.fuse import _splits
from reports.stats import leak_warnings

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _split(config):
    study = load_study(CONFIGS / config)
    frame = load_manifest(study, check_files=False).frame
    labels = effective_labels(study, frame[study.label_column])
    keep = (labels != "").to_numpy()
    frame = frame[keep].reset_index(drop=True)
    y = labels[keep].to_numpy(dtype=object)
    patients = frame[study.patient_column].to_numpy(dtype=object)
    column = study.fuse.group_column
    extra = frame[column].replace("", np.nan).to_numpy(dtype=object) if column else None
    is_test, folds = _splits(study, y, patients, extra)
    return frame, is_test, folds


def _sides_per_group(groups, is_test, folds):
    """For every group: the set of places its members landed (held out, or fold k of repeat r)."""
    place = np.where(is_test, -2, folds[0])
    return pd.Series(place).groupby(pd.Series(groups)).nunique()


@pytest.mark.parametrize("config", ["busi.yaml", "busi_binary.yaml"])
def test_busi_near_duplicates_never_straddle_folds_or_the_held_out_split(config, shared_data):
    frame, is_test, folds = _split(config)
    dup = frame["dup_group"].replace("", np.nan)
    assert dup.notna().sum() > 100, "the BUSI duplicate groups should be in the manifest"
    places = _sides_per_group(dup.fillna(frame["case_id"]).to_numpy(), is_test, folds)
    assert places.max() == 1, places[places > 1].index.tolist()[:5]


@pytest.mark.parametrize("config", ["mini_mias.yaml", "mini_mias_malignant.yaml"])
def test_both_films_of_a_woman_share_a_fold_in_mini_mias(config, shared_data):
    frame, is_test, folds = _split(config)
    places = _sides_per_group(frame["patient_id"].to_numpy(), is_test, folds)
    assert (frame.groupby("patient_id").size() == 2).sum() >= 7   # real pairs were kept (7 with normals dropped)
    assert places.max() == 1


def test_merged_groups_join_a_duplicate_group_across_patients():
    groups = merged_groups(np.array(["a", "b", "c"], dtype=object), np.array(["d1", "d1", np.nan], dtype=object))
    assert groups[0] == groups[1] != groups[2]


def test_report_flags_severity_like_columns_a_user_adds_to_mini_mias(shared_data):
    frame = pd.read_csv(shared_data / "mini_mias" / "manifest.csv", dtype=str, keep_default_na=False)
    clinical = frame[["background_tissue", "severity", "abnormality_class"]].replace("", np.nan)
    kinds = {c: "categorical" for c in clinical}
    text = " ".join(leak_warnings(clinical, frame["label"].to_numpy(), kinds))
    assert "'severity'" in text and "'background_tissue'" not in text   # density is a feature, not the answer
    # abnormality_class mixes benign and malignant findings but singles out every normal film
    assert "'abnormality_class' alone separates class 'normal' from the rest" in text
