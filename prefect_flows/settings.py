"""The batch flow's settings, parsed once from the environment into a frozen object."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from monitoring_core.paths import DEFAULT_REFERENCE_PATH


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class BatchSettings:
    """Where the flow reads from and writes to, and its row limits."""

    mongodb_uri: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = "prediction_service"
    reference_path: Path = DEFAULT_REFERENCE_PATH
    model_name: str = "ride_duration"
    reports_dir: Path = Path("reports")
    workspace_dir: Path | None = None  # default: <reports_dir>/workspace
    min_rows: int | None = None  # None: derived by the drift calibration; a value can only raise it
    min_labelled_rows: int = 30  # below: quality "unavailable"
    max_rows: int = 200_000  # above: seeded uniform sample of this many rows
    read_batch_size: int = 10_000  # MongoDB cursor batch, and the progress step
    drift_config: Path | None = None  # the monitoring config (monitoring_core/monitoring.yaml); None: its default path
    pushgateway_url: str | None = None  # where each run pushes its outcome; None: no push

    @property
    def workspace(self) -> Path:
        """Return the Evidently UI workspace folder."""
        return self.workspace_dir or self.reports_dir / "workspace"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> BatchSettings:
        """Parse the settings from environment variables (the contract's names), failing on bad values."""
        env = dict(os.environ if env is None else env)
        workspace = env.get("EVIDENTLY_WORKSPACE")
        return cls(
            mongodb_uri=env.get("MONGODB_URI") or cls.mongodb_uri,
            mongodb_database=env.get("MONGODB_DATABASE") or cls.mongodb_database,
            reference_path=Path(env.get("REFERENCE_PATH") or DEFAULT_REFERENCE_PATH),
            model_name=env.get("MODEL_NAME") or cls.model_name,
            reports_dir=Path(env.get("REPORTS_DIR") or "reports"),
            workspace_dir=Path(workspace) if workspace else None,
            min_rows=_int(env, "BATCH_MIN_ROWS", 1, minimum=1) if env.get("BATCH_MIN_ROWS") else None,
            min_labelled_rows=_int(env, "BATCH_MIN_LABELLED_ROWS", cls.min_labelled_rows, minimum=1),
            max_rows=_int(env, "BATCH_MAX_ROWS", cls.max_rows, minimum=1),
            read_batch_size=_int(env, "BATCH_READ_BATCH_SIZE", cls.read_batch_size, minimum=1),
            drift_config=Path(env["EVIDENTLY_CONFIG"]) if env.get("EVIDENTLY_CONFIG") else None,
            pushgateway_url=env.get("PUSHGATEWAY_URL") or None,
        )
