"""`python -m bench [NAME ...] [OPTIONS]`: run every benchmark (bench/bench_*.py), or the named ones with OPTIONS.

Example: `python -m bench soak --minutes 2`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    """Return the names of the benchmark modules, without the `bench_` prefix."""
    here = Path(__file__).parent
    return sorted(
        m.name.removeprefix("bench_") for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    """Run the chosen benchmarks in turn, passing the options to each; fail if any fails."""
    split = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:split] or available(), argv[split:]
    unknown = set(names) - set(available())
    if unknown:
        print(f"unknown benchmark(s) {sorted(unknown)}; available: {available()}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        print(f"\n=== bench {name} ===", flush=True)
        status |= importlib.import_module(f"bench.bench_{name}").main(list(options))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
