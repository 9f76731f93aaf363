"""One spool folder per replica when several replicas share one volume (`PREDICTION_SPOOL_PER_REPLICA`).

The spool's claim-by-pid protocol holds among the workers of one replica, not across containers:
each container has its own pid namespace, so a worker of replica B could take a segment that a live
worker of replica A is replaying. So each replica (its gunicorn master) locks the first free slot
`replica-<n>` under the shared folder and spools there; a slot left by a stopped or scaled-down
replica is taken, records and all, by the next replica that starts.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

_MAX_SLOTS = 1024


def claim_slot(base: Path) -> tuple[Path, int]:
    """Lock the first free `replica-<n>` folder under `base`; return it and the lock's file descriptor.

    Keep the descriptor open for the life of the replica: forked workers inherit it, and the lock
    goes when the last of them exits, whichever way.
    """
    base.mkdir(parents=True, exist_ok=True)
    for number in range(1, _MAX_SLOTS + 1):
        fd = os.open(base / f"replica-{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        slot = base / f"replica-{number}"
        slot.mkdir(exist_ok=True)
        return slot, fd
    raise RuntimeError(f"all {_MAX_SLOTS} replica slots under {base} are locked")
