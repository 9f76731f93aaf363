"""`python -m prefect_flows.serve`: serve the batch and archive flows on their schedules (needs PREFECT_API_URL).

Each scheduled run covers the previous full hour of every model folder of `MODELS_DIR`, a few
minutes after it closed so late writes are in. `BATCH_SCHEDULE_CRON` changes the schedule. The
deployment's parameters are the run knobs' environment settings (MODELS_DIR, BATCH_MIN_ROWS,
REPORTS_DIR, ...): they show on the deployment and on every run, and can be changed there without
redeploying.

The archive flow runs on `ARCHIVE_SCHEDULE_CRON` (default forty past every hour) and (re)writes the
`ARCHIVE_HOURS` closed hours before it (default 6), so labels arriving within that span reach the archive.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect_flows.settings import DEFAULT_CRON, ArchiveSettings, BatchSettings, SettingsError

DEPLOYMENT = "hourly"
ARCHIVE_DEPLOYMENT = "archive-hourly"


def deployment(cron: str = DEFAULT_CRON, settings: BatchSettings | None = None) -> Any:
    """Return the flow's deployment: the previous hour on a cron schedule, run knobs from `settings`."""
    from prefect_flows.batch_monitoring import batch_monitoring

    settings = settings or BatchSettings.from_env()
    return batch_monitoring.to_deployment(
        name=DEPLOYMENT,
        cron=cron,
        tags=["monitoring"],
        description=batch_monitoring.description,
        # start/end stay unset: each run takes the previous full hour.
        parameters=settings.run_parameters(),
    )


def archive_deployment(settings: ArchiveSettings | None = None) -> Any:
    """Return the archive flow's deployment: the last `archive_hours` closed hours on `archive_cron`."""
    from prefect_flows.archive import archive_predictions

    settings = settings or ArchiveSettings.from_env()
    return archive_predictions.to_deployment(
        name=ARCHIVE_DEPLOYMENT,
        cron=settings.archive_cron,
        tags=["monitoring", "archive"],
        description=archive_predictions.description,
        parameters={"last_hours": settings.archive_hours, "archive_root": settings.archive_root},
    )


def main() -> int:
    """Serve both deployments from this process until stopped."""
    try:
        settings = BatchSettings.from_env()
        archive = ArchiveSettings.from_env()
    except (ValueError, SettingsError) as exc:
        print(f"prefect_flows.serve: {exc}", file=sys.stderr)
        return 2
    from prefect import serve

    serve(deployment(settings.schedule_cron, settings), archive_deployment(archive))
    return 0


if __name__ == "__main__":
    sys.exit(main())
