"""The service's settings, parsed once from the environment at app-factory time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from monitoring_core.monitoring_config import DEFAULT_CONFIG_PATH
from monitoring_core.paths import DEFAULT_REFERENCE_PATH
from service_common.workers import worker_class

DEFAULT_PORT = 8085
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Deployment settings (the monitoring settings themselves live in monitoring_core/monitoring.yaml)."""

    config_path: Path = DEFAULT_CONFIG_PATH
    reference_path: Path = DEFAULT_REFERENCE_PATH
    model_name: str = "ride_duration"
    monitoring_token: str | None = None
    mongodb_uri: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = "prediction_service"
    rewarm_from_mongodb: bool = False
    mongodb_timeout_ms: int = 3000  # how long a re-warm waits for MongoDB before starting empty
    port: int = DEFAULT_PORT
    worker_class: str = "buffered"  # or gthread, gevent (service_common/workers.py)
    max_rows_per_request: int = 10_000
    max_body_bytes: int = 32 * 1024 * 1024
    run_evaluators: bool = True  # background evaluation threads; tests evaluate by hand

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        return cls(
            config_path=Path(env.get("EVIDENTLY_CONFIG") or DEFAULT_CONFIG_PATH),
            reference_path=Path(env.get("REFERENCE_PATH") or DEFAULT_REFERENCE_PATH),
            model_name=env.get("MODEL_NAME") or "ride_duration",
            monitoring_token=env.get("MONITORING_TOKEN") or None,
            mongodb_uri=env.get("MONGODB_URI") or "mongodb://127.0.0.1:27017",
            mongodb_database=env.get("MONGODB_DATABASE") or "prediction_service",
            rewarm_from_mongodb=(env.get("REWARM_FROM_MONGODB") or "").strip().lower() in _TRUE,
            mongodb_timeout_ms=int(env.get("MONGODB_TIMEOUT_MS") or 3000),
            port=int(env.get("PORT") or DEFAULT_PORT),
            worker_class=worker_class(env.get("WORKER_CLASS")),
            max_rows_per_request=int(env.get("MAX_ROWS_PER_REQUEST") or 10_000),
        )
