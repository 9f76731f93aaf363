"""Installed size of each image's Python dependencies, against installing the whole dev lock.

`python -m bench images`: reads the lock file each docker/*.Dockerfile installs (`pip install ... -r LOCK`)
and sums the installed files of its pins in this venv (which holds the dev lock, same versions). The
baseline, measured in the same run, is one image with every pin of requirements-dev.txt (test tooling
included).
"""

from __future__ import annotations

import importlib.metadata
import re
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# `name==version` at the start of a lock entry (hash and comment lines start with spaces).
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==", re.MULTILINE)


def lock_names(lock: Path) -> set[str]:
    """Return the distribution names a lock file written by `make lock` pins."""
    return set(_PIN.findall(lock.read_text()))


def installed_bytes(names: set[str]) -> int:
    """Sum the size of every installed file of the named distributions (those not installed here count 0)."""
    total = 0
    for name in names:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for file in files:
            path = Path(file.locate())
            if path.is_file():
                total += path.stat().st_size
    return total


def main(argv: list[str]) -> int:
    """Print each image's dependency size and its ratio to the whole-dev-lock baseline."""
    started = time.perf_counter()
    baseline = installed_bytes(lock_names(REPO / "requirements-dev.txt"))
    print(f"baseline: every pin of requirements-dev.txt    {baseline / 2**20:8.1f} MiB  1.00x")
    for dockerfile in sorted((REPO / "docker").glob("*.Dockerfile")):
        lock = re.search(r"pip install .*-r (\S+)", dockerfile.read_text())
        if lock is None:
            print(f"{dockerfile.name:<45} {0:8.1f} MiB  0.00x (stdlib only)")
            continue
        size = installed_bytes(lock_names(REPO / lock.group(1)))
        print(f"{dockerfile.name:<45} {size / 2**20:8.1f} MiB  {size / baseline:.2f}x  ({lock.group(1)})")
    print(f"(measured from this venv's installed files in {time.perf_counter() - started:.1f}s)")
    return 0
