"""The online service's drift settings (pinned tests, thresholds, verdict share), so batch and online agree.

The metrics service reads `evidently_service/config.yaml` (or `$EVIDENTLY_CONFIG`) over the schema's
pinned tests; the batch flow reads the same file through the same loader instead of a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ride_duration.schema import DriftTest


@dataclass(frozen=True)
class DriftSettings:
    """What decides a drift verdict for one model."""

    tests: dict[str, DriftTest]
    dataset_drift_share: float
    multiple_testing: str
    reference_path: Path


def online_drift_settings(config_path: Path | None, model_name: str, reference_path: Path) -> DriftSettings:
    """Return the metrics service's drift settings for `model_name` from its config file."""
    from evidently_service.config import DEFAULT_CONFIG_PATH, load_config

    path = config_path or DEFAULT_CONFIG_PATH
    configs = load_config(path, model_name, reference_path)
    if model_name not in configs:
        raise ValueError(f"model {model_name!r} is not in {path} (models there: {sorted(configs)})")
    config = configs[model_name]
    return DriftSettings(dict(config.tests), config.dataset_drift_share, config.multiple_testing, config.reference_path)
