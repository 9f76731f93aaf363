"""Where the model folders are, and where the runtimes look for them by default.

Plain constants with no heavy imports, so settings modules can read them without loading
scikit-learn or the model code.
"""

from __future__ import annotations

from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
# Every model folder the metrics service and the batch flow monitor (MODELS_DIR's default), and the
# one the prediction service serves by default (MODEL_DIR): the shipped example.
MODELS_DIR = REPO_DIR / "models"
DEFAULT_MODEL_DIR = MODELS_DIR / "ride_duration"
ARTIFACTS_DIR = REPO_DIR / "artifacts"
MODEL_FILE = "model.pkl"
REFERENCE_FILE = "reference.parquet"
# The shipped example's trained files live in its model folder (written by training, not committed).
DEFAULT_MODEL_PATH = DEFAULT_MODEL_DIR / MODEL_FILE
DEFAULT_REFERENCE_PATH = DEFAULT_MODEL_DIR / REFERENCE_FILE
# The drift configuration the metrics service and the batch flow share (EVIDENTLY_CONFIG's default).
DEFAULT_DRIFT_CONFIG_PATH = Path(__file__).resolve().parent / "monitoring.yaml"
