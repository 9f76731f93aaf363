"""The stack's components as local processes: MongoDB wire server, Prometheus, our services."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import requests

from local_stack.processes import ManagedProcess, connect_host, free_port, http_ok, port_open, python_module
from monitoring_core.paths import DEFAULT_MODEL_DIR


def nx_27017_binary() -> str:
    """Return the path of the nx-27017 MongoDB wire server installed beside this interpreter."""
    beside = Path(sys.executable).parent / "nx-27017"
    found = str(beside) if beside.exists() else shutil.which("nx-27017")
    if not found:
        raise FileNotFoundError("nx-27017 is not installed: pip install -r requirements.txt")
    return found


def start_mongo(
    workdir: Path, port: int | None = None, data_dir: Path | None = None, bind: str = "127.0.0.1"
) -> tuple[ManagedProcess, str]:
    """Start nx-27017 (in memory, or persisted in `data_dir`) listening on `bind`; return it and its URI."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    # Own pid and log files: the defaults are shared fixed paths (see NOTES.md).
    args = [
        nx_27017_binary(),
        "--host",
        bind,
        "-p",
        str(port),
        "--pid-file",
        str(workdir / f"nx-{port}.pid"),
        "--log-file",
        str(workdir / f"nx-{port}.log"),
    ]
    args += ["--data-dir", str(data_dir)] if data_dir else ["--db", "memory"]
    proc = ManagedProcess("mongodb", args, workdir / f"nx-{port}.out").start()
    host = connect_host(bind)
    proc.wait_ready(lambda: port_open(port, host), timeout=20)
    return proc, f"mongodb://{host}:{port}"


def prometheus_binary(name: str = "prometheus") -> str | None:
    """Return the path of the Prometheus (or promtool) binary, or None."""
    return shutil.which(name)


def start_ready_binary(
    name: str,
    binary: str | None,
    package: str,
    flags: list[str],
    workdir: Path,
    port: int | None = None,
    bind: str = "127.0.0.1",
) -> tuple[ManagedProcess, str]:
    """Start a Prometheus-family server (Prometheus, Alertmanager, Pushgateway) on loopback.

    Return it and its base URL once `/-/ready` answers; a missing binary names its Debian package.
    """
    if binary is None:
        raise FileNotFoundError(f"{name} is not installed: apt-get install -y {package}")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [binary, *flags, f"--web.listen-address={bind}:{port}", "--log.level=warn"]
    proc = ManagedProcess(name, args, workdir / f"{name}-{port}.log").start()
    url = f"http://{connect_host(bind)}:{port}"
    proc.wait_ready(lambda: http_ok(f"{url}/-/ready"), timeout=30)
    return proc, url


def start_prometheus(
    config_file: Path, workdir: Path, port: int | None = None, bind: str = "127.0.0.1"
) -> tuple[ManagedProcess, str]:
    """Start Prometheus with `config_file`; return it and its base URL once ready."""
    flags = [f"--config.file={config_file}", f"--storage.tsdb.path={workdir / 'tsdb'}", "--web.enable-lifecycle"]
    return start_ready_binary("prometheus", prometheus_binary(), "prometheus", flags, workdir, port, bind)


def start_pushgateway(workdir: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """Start a Prometheus Pushgateway (in memory); return it and its base URL once ready."""
    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    # Debian's build persists to a shared /var/lib file by default: every instance here is in memory.
    return start_ready_binary("pushgateway", binary, "prometheus-pushgateway", ["--persistence.file="], workdir, port)


def models_dir_for(reference_path: Path, workdir: Path, model_dir: Path = DEFAULT_MODEL_DIR) -> Path:
    """Return a MODELS_DIR under `workdir` with one model folder: `model_dir`'s model.yaml beside `reference_path`.

    For callers that trained a reference somewhere else (tests, benches, the demo's artifacts folder).
    """
    folder = workdir / "models" / Path(model_dir).name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(model_dir) / "model.yaml", folder / "model.yaml")
    link = folder / "reference.parquet"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(reference_path).resolve())
    return folder.parent


def start_service(
    module: str,
    workdir: Path,
    env: dict[str, str],
    port: int | None = None,
    health_path: str = "/health",
    timeout: float = 60.0,
) -> tuple[ManagedProcess, str]:
    """Start `python -m module` on a free port with `env`; return it and its base URL once healthy.

    The metrics service monitors the model folders of `MODELS_DIR`; given only the older `REFERENCE_PATH`,
    it gets a MODELS_DIR holding the default model folder's description beside that reference.
    It listens on loopback unless `env` sets `HOST` (the services' own default is 0.0.0.0, for containers).
    """
    if module == "evidently_service" and "MODELS_DIR" not in env and "REFERENCE_PATH" in env:
        env = {**env, "MODELS_DIR": str(models_dir_for(Path(env["REFERENCE_PATH"]), workdir / "metrics_models"))}
    port = port or free_port()
    env = {"HOST": "127.0.0.1", **env, "PORT": str(port)}
    proc = ManagedProcess(module, python_module(module), workdir / f"{module}-{port}.log", env=env).start()
    url = f"http://{connect_host(env['HOST'])}:{port}"
    proc.wait_ready(lambda: http_ok(url + health_path), timeout=timeout)
    return proc, url


def start_prediction_service(
    workdir: Path,
    env: dict[str, str],
    model_dir: Path | None = None,
    port: int | None = None,
    timeout: float = 60.0,
) -> tuple[ManagedProcess, str]:
    """Start the prediction service serving the model folder `model_dir` (else `env`'s MODEL_DIR, else the default).

    The folder holds the model's `model.yaml`, its model file and `reference.parquet`; return the
    process and its base URL once /health answers.
    """
    env = {**env, "MODEL_DIR": str(model_dir)} if model_dir is not None else env
    return start_service("prediction_service", workdir, env, port=port, timeout=timeout)


def prometheus_query(url: str, promql: str) -> list[dict]:
    """Run an instant PromQL query and return the result vector."""
    response = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    return response.json()["data"]["result"]
