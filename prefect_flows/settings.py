"""The batch flow's settings, parsed once from the environment into a frozen object.

Connections (MongoDB, the Pushgateway) and the schedule stay settings. The knobs a user may change per
run are also flow parameters (`RUN_PARAMETERS`): the environment gives their defaults, a run or a
deployment may override them, and each run shows the values it used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from monitoring_core.settings import DriftConfigSettings, ModelsDirSettings, MongoSettings, SettingsError, env

DEFAULT_CRON = "10 * * * *"  # ten past every hour: the previous hour, with its stragglers
ARCHIVE_CRON = "40 * * * *"  # the archive runs apart from the batch flow, both reading MongoDB

# Flow parameter -> BatchSettings field: what a run or a deployment may change.
RUN_PARAMETERS = {
    "models_dir": "models_dir",
    "model_name": "model_name",
    "min_rows": "min_rows",
    "min_labelled_rows": "min_labelled_rows",
    "max_rows": "max_rows",
    "read_batch_size": "read_batch_size",
    "reports_dir": "reports_dir",
    "workspace": "workspace_dir",
    "drift_config": "config_path",
    "engine": "engine",
    "archive_root": "archive_root",
    "dask_workers": "dask_workers",
}


class BatchSettings(ModelsDirSettings, MongoSettings, DriftConfigSettings):
    """Where the flow reads from and writes to, and its row limits."""

    # The one model of MODELS_DIR to monitor (`--model`, a run parameter; a name no folder has fails the
    # run); None: every model folder.
    model_name: str | None = Field(None, min_length=1)
    reports_dir: Path = env("REPORTS_DIR", Path("reports"))
    workspace_dir: Path | None = env("EVIDENTLY_WORKSPACE", None)  # None: <reports_dir>/workspace
    # None: derived by the drift calibration (the smallest size with a verdict); a value can only raise it.
    min_rows: int | None = env("BATCH_MIN_ROWS", None, ge=1)
    min_labelled_rows: int = env("BATCH_MIN_LABELLED_ROWS", 30, ge=1)  # below: quality "unavailable"
    max_rows: int = env("BATCH_MAX_ROWS", 200_000, ge=1)  # above: seeded uniform sample of this many rows
    read_batch_size: int = env("BATCH_READ_BATCH_SIZE", 10_000, ge=1)  # MongoDB cursor batch, progress step
    pushgateway_url: str | None = env("PUSHGATEWAY_URL", None)  # where each run pushes its outcome; None: no push
    schedule_cron: str = env("BATCH_SCHEDULE_CRON", DEFAULT_CRON, min_length=1)  # prefect_flows.serve only
    # How a run reads the period (docs/batch_monitoring.md "Large periods"): `frame` one pandas frame from
    # MongoDB; `dask` per hour on a Dask cluster (archive partitions, else MongoDB cursors), exact aggregates
    # over every row and the reports on a uniform sample; `auto` Dask when the archive holds any hour of the
    # period or the period is longer than prefect_flows.scale.AUTO_DASK_HOURS.
    engine: Literal["auto", "frame", "dask"] = env("BATCH_ENGINE", "auto")
    archive_root: str = env("ARCHIVE_ROOT", "archive", min_length=1)  # the archive's fsspec URL (hourly Parquet)
    dask_workers: int = env("BATCH_DASK_WORKERS", 2, ge=1)  # worker processes of the local Dask cluster
    # An existing Dask scheduler (tcp://host:8786) instead of a local cluster; its workers need this code,
    # the flow's dependencies and PREFECT_API_URL (docs/batch_monitoring.md).
    dask_address: str | None = env("BATCH_DASK_ADDRESS", None)

    @property
    def workspace(self) -> Path:
        """Return the Evidently UI workspace folder."""
        return self.workspace_dir or self.reports_dir / "workspace"

    def run_parameters(self) -> dict[str, Any]:
        """Return the flow parameters these settings give, as JSON values (an unset workspace left out)."""
        values = {parameter: getattr(self, field) for parameter, field in RUN_PARAMETERS.items()}
        return {name: str(v) if isinstance(v, Path) else v for name, v in values.items() if v is not None}

    def with_run_parameters(self, **parameters: Any) -> BatchSettings:
        """Return these settings with the given flow parameters applied (None keeps the setting)."""
        unknown = sorted(set(parameters) - set(RUN_PARAMETERS))
        if unknown:
            raise SettingsError(f"not flow parameters: {', '.join(unknown)}")
        # The field names of everything that can fail validation (the row limits) are the parameters'
        # names, so an error names the parameter.
        return self.replace(**{RUN_PARAMETERS[name]: v for name, v in parameters.items() if v is not None})


class ArchiveSettings(ModelsDirSettings, MongoSettings):
    """Where the archive flow reads logged predictions and writes their hourly Parquet partitions."""

    # Any fsspec URL: a local folder (default), or e.g. s3://bucket/prefix with s3fs installed.
    archive_root: str = env("ARCHIVE_ROOT", "archive", min_length=1)
    # prefect_flows.serve only: when the archive runs, and how many closed hours each run (re)writes. The hours
    # before the last are rewritten so that labels arriving within that span reach the archive too.
    archive_cron: str = env("ARCHIVE_SCHEDULE_CRON", ARCHIVE_CRON, min_length=1)
    archive_hours: int = env("ARCHIVE_HOURS", 6, ge=1, le=24 * 31)
