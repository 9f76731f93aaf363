"""Every command block of README.md names things that exist: make targets, modules and their options, compose services.

The Python client is run as printed by tests/prediction_service/test_readme_client.py; the compose "run the flow
now" line by tests/containers/test_compose_file.py. Here every shell line is checked without running what it
would start (a download, the whole demo, a Docker engine this machine lacks): a make target is defined, a
`python -m` module exists and accepts every option the line passes (its own `--help` lists it), a script
exists, a `docker compose` service is in docker-compose.yml.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def shell_lines() -> list[str]:
    """Return every command of README.md's bash blocks (comments dropped, continuations joined)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


@cache
def module_help(module: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readme_has_shell_blocks() -> None:
    assert len(shell_lines()) >= 8


@pytest.mark.parametrize("line", shell_lines())
def test_every_readme_command_names_what_exists(line: str) -> None:
    words = shlex.split(line)
    if words[0] == "make":
        targets = re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M)
        assert set(words[1:]) <= set(targets), line
        return
    if words[:2] == ["docker", "compose"]:
        services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
        if "run" in words:
            after = words[words.index("run") + 1 :]
            service = next(w for w in after if not w.startswith("-"))
            assert service in services, line
    if "-m" in words and any(w.endswith("python") or w.endswith("python3") for w in words):
        module = words[words.index("-m") + 1]
        options = {w.split("=", 1)[0] for w in words[words.index("-m") + 2 :] if w.startswith("--")}
        if not options:  # a server started bare (it has no --help): the module must exist
            assert importlib.util.find_spec(module) is not None, line
            return
        shown = set(re.findall(r"--[a-z][a-z-]*", module_help(module)))
        assert options <= shown, (line, options - shown)
        return
    if words[0] == "python3":
        assert (ROOT / words[1]).is_file(), line
