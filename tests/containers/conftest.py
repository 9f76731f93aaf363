"""Fixtures for the container checks: the rendered compose model and the parsed Dockerfiles."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from containers_support import DOCKERFILES, REPO, Dockerfile, parse_dockerfile, run_compose


@pytest.fixture(scope="session")
def rendered() -> dict:
    """The compose model as `docker compose config --format json` renders it with .env.example (all profiles)."""
    result = run_compose("--profile", "simulate", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, Dockerfile]:
    """Every docker/*.Dockerfile by its repository-relative path."""
    return {str(p.relative_to(REPO)): parse_dockerfile(p) for p in DOCKERFILES}


@pytest.fixture(scope="session")
def dockerfile_of(rendered: dict, dockerfiles: dict[str, Dockerfile]) -> Callable[[str], Dockerfile]:
    """Return the parsed Dockerfile a compose service is built from."""

    def find(service: str) -> Dockerfile:
        return dockerfiles[rendered["services"][service]["build"]["dockerfile"]]

    return find
