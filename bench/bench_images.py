"""Installed size of each image's Python dependencies, against installing all of requirements.txt.

`python -m bench images`: reads each docker/*.Dockerfile's `--without` list, resolves the same pins'
dependency closure from this venv's metadata, and sums the installed files. The baseline, measured
in the same run, is one image with every pin of requirements.txt (test tooling included).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import time
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent


def _runtime_requirements():
    spec = importlib.util.spec_from_file_location("runtime_requirements", REPO / "docker" / "runtime_requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def closure(names: set[str], canonical) -> set[str]:
    """Return the distributions `names` pull in (extras off), by canonical name."""
    todo, seen = list(names), set()
    while todo:
        name = canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def installed_bytes(names: set[str]) -> int:
    """Sum the size of every installed file of the named distributions."""
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
    """Print each image's dependency size and its ratio to the all-requirements baseline."""
    started = time.perf_counter()
    rr = _runtime_requirements()
    lines = (REPO / "requirements.txt").read_text().splitlines()
    everything = {name for line in lines if (name := rr.requirement_name(line))}
    baseline = installed_bytes(closure(everything, rr.canonical))
    print(f"baseline: every pin of requirements.txt        {baseline / 2**20:8.1f} MiB  1.00x")
    for dockerfile in sorted((REPO / "docker").glob("*.Dockerfile")):
        if "runtime_requirements.py" not in dockerfile.read_text():
            print(f"{dockerfile.name:<45} {0:8.1f} MiB  0.00x (stdlib only)")
            continue
        without = re.findall(r"--without (\S+)", dockerfile.read_text())
        kept = {rr.requirement_name(line) for line in rr.runtime_lines(lines, without)}
        size = installed_bytes(closure(kept, rr.canonical))
        print(f"{dockerfile.name:<45} {size / 2**20:8.1f} MiB  {size / baseline:.2f}x")
    print(f"(measured from this venv's installed files in {time.perf_counter() - started:.1f}s)")
    return 0
