"""Two tiny fitted runs for the report tests: a binary one (with a hostile clinical column name)
and a three-class one, both with a constant clinical column that fuse leaves out. Built once per session: extract (handcrafted only) -> fuse -> fit -> report."""

import pandas as pd
import pytest
import yaml

from pipeline.config import load_study
from study_factory import make_study, report_page, run

FIT = {"learners": ["lr", "rf"], "stack_base": ["lr", "knn"], "n_boot": 100, "n_jobs": 1,
       "pca_components": 5, "params": {"rf": {"n_estimators": 30}}, "ablations": ["images_only", "clinical_only"]}
HOSTILE = "<script>alert(1)</script>"


def _fitted_run(root, three_classes):
    n = 54 if three_classes else 36     # the stack's 5 inner folds need 5 patients per class
    path = make_study(root, n=n, modalities=("ultrasound",), backbones=("handcrafted",),
                      extra={"fuse": {"n_folds": 3, "test_size": 0.25}, "fit": FIT})
    frame = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    frame.loc[3, "ultrasound_path"] = ""                    # a case missing its image
    if three_classes:
        frame["label"] = [("benign", "malignant", "normal")[i % 3] for i in frame.index]
        frame["patient_id"] = frame.case_id
    frame.loc[35, "label"] = "unsure"                        # excluded, listed in the report
    frame = frame.rename(columns={"history": HOSTILE})
    frame["site"] = "A"                                      # constant: fuse drops it with a note
    frame.to_csv(root / "manifest.csv", index=False)
    config = yaml.safe_load(path.read_text())
    config["clinical"] = {"age": "numeric", HOSTILE: "categorical", "site": "categorical"}
    config["label"] = {"drop": ["unsure"]}
    if not three_classes:
        config["label"]["positive"] = "malignant"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    study = load_study(path)
    run(study, "extract", "fuse", "fit")
    return study, report_page(study)


@pytest.fixture(scope="session")
def binary_run(tmp_path_factory):
    return _fitted_run(tmp_path_factory.mktemp("binary"), three_classes=False)


@pytest.fixture(scope="session")
def three_class_run(tmp_path_factory):
    return _fitted_run(tmp_path_factory.mktemp("three"), three_classes=True)


@pytest.fixture(scope="session", params=["binary", "three_class"])
def any_run(request):
    return request.getfixturevalue(f"{request.param}_run")
