"""Library versions recorded with every stage (read from package metadata: importing TF is costly)."""

from __future__ import annotations

import platform

from features.hashing import tensorflow_version, version_of
from pipeline import __version__

_PACKAGES = ("numpy", "pandas", "h5py", "opencv-python-headless", "scikit-image", "pydicom", "keras",
             "scikit-learn", "imbalanced-learn", "xgboost", "xgboost-cpu", "shap")


def library_versions():
    versions = {n: version_of(n) for n in _PACKAGES}
    versions["tensorflow"] = tensorflow_version()
    versions["python"] = platform.python_version()
    versions["breastfuse"] = __version__
    return versions
