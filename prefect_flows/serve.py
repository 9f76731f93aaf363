"""`python -m prefect_flows.serve`: serve the batch flow on its schedule (needs a Prefect server: PREFECT_API_URL).

Each scheduled run covers the previous full hour, a few minutes after it closed so late
writes and early labels are in. `BATCH_SCHEDULE_CRON` changes the schedule.
"""

from __future__ import annotations

import os
import sys

DEFAULT_CRON = "10 * * * *"  # ten past every hour: the previous hour, with its stragglers


def main() -> int:
    """Serve the flow as a deployment with a cron schedule until stopped."""
    from prefect_flows.batch_monitoring import batch_monitoring

    cron = os.environ.get("BATCH_SCHEDULE_CRON") or DEFAULT_CRON
    batch_monitoring.serve(name="hourly", cron=cron, tags=["monitoring"], description=batch_monitoring.description)
    return 0


if __name__ == "__main__":
    sys.exit(main())
