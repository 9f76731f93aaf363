"""Typed, frozen settings of the prediction service, parsed from the environment once per app."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Literal, Self

from pydantic import field_validator, model_validator

from monitoring_core.settings import Flag, ModelDirSettings, MongoSettings, ServerSettings, TokenSettings, env, port


def _default_spool_dir(mongodb_uri: str, mongodb_database: str) -> Path:
    # One spool per MongoDB target: two services on one host never replay each other's records.
    digest = hashlib.sha256(f"{mongodb_uri}|{mongodb_database}".encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"prediction_service_spool-{digest}"


class Settings(ServerSettings, ModelDirSettings, MongoSettings, TokenSettings):
    """Everything the service reads from its environment (see docs/prediction_service.md "Settings")."""

    # The model served is MODEL_DIR's (its description, model file and reference); this overrides its file.
    model_path: Path | None = env("MODEL_PATH", None)
    evidently_service_url: str = env("EVIDENTLY_SERVICE_URL", "http://127.0.0.1:8085", min_length=1)
    port: int = port(9696)
    workers: int = env("WORKERS", 2, ge=1)
    threads: int = env("THREADS", 4, ge=1)
    # Input limits.
    max_body_bytes: int = env("PREDICTION_MAX_BODY_BYTES", 256 * 1024, ge=1)
    max_batch_rows: int = env("PREDICTION_MAX_BATCH_ROWS", 100, ge=1)
    # Fields outside the schema: keep them on the logged document, ignore them, or reject the row (400).
    unknown_fields: Literal["keep", "ignore", "reject"] = env("UNKNOWN_FIELDS", "keep")
    # Switches: the benchmark's bare mode turns logging and forwarding off.
    log_to_mongodb: Flag = env("PREDICTION_LOG_TO_MONGODB", True)
    forward_to_metrics: Flag = env("PREDICTION_FORWARD_TO_METRICS", True)
    # Background writer and forwarder.
    queue_capacity: int = env("PREDICTION_QUEUE_CAPACITY", 20_000, ge=0)
    forward_capacity: int = env("PREDICTION_FORWARD_CAPACITY", 20_000, ge=0)
    batch_size: int = env("PREDICTION_BATCH_SIZE", 500, ge=1)
    flush_interval_seconds: float = env("PREDICTION_FLUSH_INTERVAL_SECONDS", 0.2, ge=0)
    mongo_timeout_seconds: float = env("PREDICTION_MONGO_TIMEOUT_SECONDS", 1.0, ge=0)
    mongo_retry_seconds: float = env("PREDICTION_MONGO_RETRY_SECONDS", 1.0, ge=0)
    forward_timeout_seconds: float = env("PREDICTION_FORWARD_TIMEOUT_SECONDS", 2.0, ge=0)
    forward_retries: int = env("PREDICTION_FORWARD_RETRIES", 3, ge=0)
    # Unset: a folder per MongoDB target, filled in below (the default depends on two other fields).
    spool_dir: Path = env("PREDICTION_SPOOL_DIR", None)
    spool_capacity_records: int = env("PREDICTION_SPOOL_CAPACITY_RECORDS", 1_000_000, ge=0)
    # Several replicas mount one spool folder (compose `--scale`): each locks its own subfolder of it.
    spool_per_replica: Flag = env("PREDICTION_SPOOL_PER_REPLICA", False)
    # Every accepted record goes to a per-worker log (in the spool folder) before the answer: a SIGKILL
    # loses nothing. fsync per request also survives a power loss, at the cost of a disk flush each.
    wal_enabled: Flag = env("PREDICTION_WAL", True)
    wal_fsync: Flag = env("PREDICTION_WAL_FSYNC", False)
    # A record that can be neither written to MongoDB nor kept on disk (MongoDB away and the spool or its
    # disk full): `serve` answers, counts it as dropped and alerts (monitoring never breaks serving);
    # `refuse` answers 503 instead, so no prediction goes out without its log (for audit duties).
    unlogged: Literal["serve", "refuse"] = env("PREDICTION_UNLOGGED", "serve")
    # How often the writer checks that the indexes still exist (also after every new connection).
    index_check_seconds: float = env("PREDICTION_INDEX_CHECK_SECONDS", 60.0, gt=0)
    # How long a label whose prediction is not in MongoDB yet is retried, and how many wait per worker.
    label_retry_seconds: float = env("PREDICTION_LABEL_RETRY_SECONDS", 600.0, ge=0)
    max_pending_labels: int = env("PREDICTION_MAX_PENDING_LABELS", 10_000, ge=0)
    health_cache_seconds: float = env("PREDICTION_HEALTH_CACHE_SECONDS", 5.0, ge=0)

    @field_validator("unknown_fields", "unlogged", mode="before")
    @classmethod
    def _policy_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("evidently_service_url")
    @classmethod
    def _without_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @model_validator(mode="after")
    def _spool_per_target(self) -> Self:
        if self.spool_dir is None:
            # Frozen model: set once, here, before anyone can read it.
            object.__setattr__(self, "spool_dir", _default_spool_dir(self.mongodb_uri, self.mongodb_database))
        return self
