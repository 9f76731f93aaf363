"""`python -m prefect_flows.serve`: serve the batch flow on its schedule (needs a Prefect server: PREFECT_API_URL).

Each scheduled run covers the previous full hour of every model folder of `MODELS_DIR`, a few
minutes after it closed so late writes are in. `BATCH_SCHEDULE_CRON` changes the schedule. The
deployment's parameters are the run knobs' environment settings (MODELS_DIR, BATCH_MIN_ROWS,
REPORTS_DIR, ...): they show on the deployment and on every run, and can be changed there without
redeploying.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect_flows.settings import DEFAULT_CRON, BatchSettings

DEPLOYMENT = "hourly"


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


def main() -> int:
    """Serve the deployment from this process until stopped."""
    try:
        settings = BatchSettings.from_env()
    except ValueError as exc:
        print(f"prefect_flows.serve: {exc}", file=sys.stderr)
        return 2
    from prefect import serve

    serve(deployment(settings.schedule_cron, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
