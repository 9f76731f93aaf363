"""Typed, frozen settings of the prediction service, parsed from the environment once per app."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitoring_core.paths import DEFAULT_MODEL_PATH
from service_common.workers import worker_class

_DEFAULT_URI = "mongodb://127.0.0.1:27017"
_DEFAULT_DATABASE = "prediction_service"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise ValueError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")
    return value in _TRUE


def _number(env: Mapping[str, str], name: str, default: float, kind: type = int) -> float:
    raw = env.get(name)
    try:
        value = kind(raw) if raw not in (None, "") else default
    except ValueError:
        raise ValueError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def _default_spool_dir(mongodb_uri: str, mongodb_database: str) -> Path:
    # One spool per MongoDB target: two services on one host never replay each other's records.
    digest = hashlib.sha256(f"{mongodb_uri}|{mongodb_database}".encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"prediction_service_spool-{digest}"


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment (see README "Prediction service")."""

    model_path: Path = DEFAULT_MODEL_PATH
    model_name: str = "ride_duration"
    mongodb_uri: str = _DEFAULT_URI
    mongodb_database: str = _DEFAULT_DATABASE
    evidently_service_url: str = "http://127.0.0.1:8085"
    monitoring_token: str | None = None
    host: str = "0.0.0.0"
    port: int = 9696
    workers: int = 2
    worker_class: str = "buffered"  # buffered / gthread: `threads` per worker (service_common/workers.py)
    threads: int = 4
    # Input limits.
    max_body_bytes: int = 256 * 1024
    max_batch_rows: int = 100
    # Switches: the benchmark's bare mode turns logging and forwarding off; `sync_monitoring`
    # is the naive baseline that writes and posts inside the request (benchmark only).
    log_to_mongodb: bool = True
    forward_to_metrics: bool = True
    sync_monitoring: bool = False
    # Background writer and forwarder.
    queue_capacity: int = 20_000
    forward_capacity: int = 20_000
    batch_size: int = 500
    flush_interval_seconds: float = 0.2
    mongo_timeout_seconds: float = 1.0
    mongo_retry_seconds: float = 1.0
    forward_timeout_seconds: float = 2.0
    forward_retries: int = 3
    spool_dir: Path = field(default_factory=lambda: _default_spool_dir(_DEFAULT_URI, _DEFAULT_DATABASE))
    spool_capacity_records: int = 1_000_000
    # How long /feedback waits for a prediction that may still be in a worker's queue.
    feedback_wait_seconds: float = 1.0
    label_retry_seconds: float = 600.0
    health_cache_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Parse the settings from `env` (default: os.environ); raise ValueError naming a bad variable."""
        env = os.environ if env is None else env
        d = cls()
        mongodb_uri = env.get("MONGODB_URI") or d.mongodb_uri
        mongodb_database = env.get("MONGODB_DATABASE") or d.mongodb_database
        return cls(
            model_path=Path(env.get("MODEL_PATH") or d.model_path),
            model_name=env.get("MODEL_NAME") or d.model_name,
            mongodb_uri=mongodb_uri,
            mongodb_database=mongodb_database,
            evidently_service_url=(env.get("EVIDENTLY_SERVICE_URL") or d.evidently_service_url).rstrip("/"),
            monitoring_token=env.get("MONITORING_TOKEN") or None,
            host=env.get("HOST") or d.host,
            port=int(_number(env, "PORT", d.port)),
            workers=max(1, int(_number(env, "WORKERS", d.workers))),
            worker_class=worker_class(env.get("WORKER_CLASS")),
            threads=max(1, int(_number(env, "THREADS", d.threads))),
            max_body_bytes=int(_number(env, "PREDICTION_MAX_BODY_BYTES", d.max_body_bytes)),
            max_batch_rows=max(1, int(_number(env, "PREDICTION_MAX_BATCH_ROWS", d.max_batch_rows))),
            log_to_mongodb=_flag(env, "PREDICTION_LOG_TO_MONGODB", d.log_to_mongodb),
            forward_to_metrics=_flag(env, "PREDICTION_FORWARD_TO_METRICS", d.forward_to_metrics),
            sync_monitoring=_flag(env, "PREDICTION_SYNC_MONITORING", d.sync_monitoring),
            queue_capacity=int(_number(env, "PREDICTION_QUEUE_CAPACITY", d.queue_capacity)),
            forward_capacity=int(_number(env, "PREDICTION_FORWARD_CAPACITY", d.forward_capacity)),
            batch_size=max(1, int(_number(env, "PREDICTION_BATCH_SIZE", d.batch_size))),
            flush_interval_seconds=_number(env, "PREDICTION_FLUSH_INTERVAL_SECONDS", d.flush_interval_seconds, float),
            mongo_timeout_seconds=_number(env, "PREDICTION_MONGO_TIMEOUT_SECONDS", d.mongo_timeout_seconds, float),
            mongo_retry_seconds=_number(env, "PREDICTION_MONGO_RETRY_SECONDS", d.mongo_retry_seconds, float),
            forward_timeout_seconds=_number(
                env, "PREDICTION_FORWARD_TIMEOUT_SECONDS", d.forward_timeout_seconds, float
            ),
            forward_retries=int(_number(env, "PREDICTION_FORWARD_RETRIES", d.forward_retries)),
            spool_dir=Path(env.get("PREDICTION_SPOOL_DIR") or _default_spool_dir(mongodb_uri, mongodb_database)),
            spool_capacity_records=int(_number(env, "PREDICTION_SPOOL_CAPACITY_RECORDS", d.spool_capacity_records)),
            feedback_wait_seconds=_number(env, "PREDICTION_FEEDBACK_WAIT_SECONDS", d.feedback_wait_seconds, float),
            label_retry_seconds=_number(env, "PREDICTION_LABEL_RETRY_SECONDS", d.label_retry_seconds, float),
            health_cache_seconds=_number(env, "PREDICTION_HEALTH_CACHE_SECONDS", d.health_cache_seconds, float),
        )
