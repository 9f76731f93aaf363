"""Write .env from .env.example with a fresh random secret for every `change-me` value.

`python3 docker/make_env.py [--example .env.example] [--out .env] [--force]` -- stdlib only, runs anywhere.
The file is created readable by its owner only, and an existing .env is never overwritten unless --force.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

PLACEHOLDER = "change-me"
ROOT = Path(__file__).resolve().parent.parent


def fill_secrets(example: str, token=lambda: secrets.token_urlsafe(24)) -> str:
    """Return `example` with each `NAME=change-me` line given its own new URL-safe secret."""
    lines = []
    for line in example.splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#") and value.strip() == PLACEHOLDER:
            line = f"{name}={token()}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Create the .env file; refuse to replace an existing one without --force."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example", help="the template to fill")
    parser.add_argument("--out", type=Path, default=ROOT / ".env", help="where to write the settings")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file (its secrets are lost)")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists; edit it, or pass --force to replace its secrets", file=sys.stderr)
        return 1
    text = fill_secrets(args.example.read_text())
    # Open with 0600 from the start so the secrets are never readable by others, even briefly.
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(args.out, 0o600)
    print(f"wrote {args.out} with new secrets; keep it out of git (it is in .gitignore)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
