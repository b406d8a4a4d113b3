"""Config and manifest validation, stage orchestration, artifact paths, fingerprints, errors."""

__version__ = "0.2.0"
