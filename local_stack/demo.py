"""`make demo`: train the model and run the stack locally (filled in as the services land)."""

from __future__ import annotations

import sys

from ride_duration.model import ARTIFACTS_DIR
from ride_duration.train import train


def main() -> int:
    """Train the model; later parts print 'not built yet' until they exist."""
    train("synthetic", 30_000, 42, ARTIFACTS_DIR, "2021-01", ARTIFACTS_DIR)
    for part in ("prediction_service", "evidently_service", "prefect_flows", "usage_simulation"):
        print(f"[demo] {part}: not built yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
