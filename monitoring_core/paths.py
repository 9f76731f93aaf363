"""Where `python -m ride_duration.train` writes its artifacts, and where the runtimes look for them.

Plain constants with no heavy imports, so settings modules can read them without loading
scikit-learn or the model code.
"""

from __future__ import annotations

from pathlib import Path

ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "artifacts"
MODEL_FILE = "model.pkl"
REFERENCE_FILE = "reference.parquet"
DEFAULT_MODEL_PATH = ARTIFACTS_DIR / MODEL_FILE
DEFAULT_REFERENCE_PATH = ARTIFACTS_DIR / REFERENCE_FILE
# The drift configuration the metrics service and the batch flow share (EVIDENTLY_CONFIG's default).
DEFAULT_DRIFT_CONFIG_PATH = Path(__file__).resolve().parent / "monitoring.yaml"
