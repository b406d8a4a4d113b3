"""Config and manifest validation, stage orchestration, artifact paths, fingerprints, errors."""

__version__ = "0.1.0"
