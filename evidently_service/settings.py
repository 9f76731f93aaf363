"""The service's settings, parsed once from the environment at app-factory time."""

from __future__ import annotations

from monitoring_core.settings import (
    DriftConfigSettings,
    Flag,
    ModelsDirSettings,
    MongoSettings,
    ServerSettings,
    TokenSettings,
    env,
    port,
)


class Settings(ServerSettings, ModelsDirSettings, TokenSettings, MongoSettings, DriftConfigSettings):
    """Deployment settings: every model folder of `MODELS_DIR` is monitored, as `EVIDENTLY_CONFIG` says."""

    port: int = port(8085)
    rewarm_from_mongodb: Flag = env("REWARM_FROM_MONGODB", False)
    # How long a re-warm waits for MongoDB before starting empty.
    mongodb_timeout_ms: int = env("MONGODB_TIMEOUT_MS", 3000, ge=0)
    max_rows_per_request: int = env("MAX_ROWS_PER_REQUEST", 10_000, ge=1)
    max_body_bytes: int = env("EVIDENTLY_MAX_BODY_BYTES", 32 * 1024 * 1024, ge=1)
    # Not from the environment: background evaluation threads, off in tests that evaluate by hand.
    run_evaluators: bool = True
