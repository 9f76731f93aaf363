"""`python -m prefect_flows.serve`: serve the batch flow on its schedule (needs a Prefect server: PREFECT_API_URL).

Each scheduled run covers the previous full hour, a few minutes after it closed so late
writes are in. `BATCH_SCHEDULE_CRON` changes the schedule.
"""

from __future__ import annotations

import os
import sys
from typing import Any

DEFAULT_CRON = "10 * * * *"  # ten past every hour: the previous hour, with its stragglers
DEPLOYMENT = "hourly"


def deployment(cron: str = DEFAULT_CRON) -> Any:
    """Return the flow's deployment: default parameters (the previous hour) on a cron schedule."""
    from prefect_flows.batch_monitoring import batch_monitoring

    return batch_monitoring.to_deployment(
        name=DEPLOYMENT, cron=cron, tags=["monitoring"], description=batch_monitoring.description
    )


def main() -> int:
    """Serve the deployment from this process until stopped."""
    from prefect import serve

    serve(deployment(os.environ.get("BATCH_SCHEDULE_CRON") or DEFAULT_CRON))
    return 0


if __name__ == "__main__":
    sys.exit(main())
