"""Shared fixtures: the real datasets beside the repo (../shared/data)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    assert SHARED_DATA.is_dir(), f"the shared datasets are expected at {SHARED_DATA}"
    return SHARED_DATA
