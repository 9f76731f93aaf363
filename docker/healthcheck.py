"""Exit 0 when a URL answers 2xx in time, else 1: the images' HEALTHCHECK (slim images have no curl).

`python healthcheck.py URL [TIMEOUT_SECONDS]` -- stdlib only, so it works in every image we build.
"""

from __future__ import annotations

import sys
import urllib.request


def probe(url: str, timeout: float = 3.0) -> str | None:
    """Return None when `url` answers 2xx within `timeout` seconds, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 -- fixed local URL
            return None if 200 <= response.status < 300 else f"status {response.status}"
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts and refused connections are OSErrors
        return str(exc)


def main(argv: list[str]) -> int:
    """Probe argv[0] (timeout argv[1], default 3 s) and report a failure on stderr."""
    if not argv:
        print("usage: healthcheck.py URL [TIMEOUT_SECONDS]", file=sys.stderr)
        return 2
    problem = probe(argv[0], float(argv[1]) if len(argv) > 1 else 3.0)
    if problem:
        print(f"unhealthy: {argv[0]}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
