"""`make demo`: train the model, start the whole stack locally, send traffic with drift, score detection.

In an interactive terminal (or with KEEP_RUNNING=1) it then leaves the stack up with the reports served
over HTTP and the Evidently UI running, prints live links, and stops everything it started on Ctrl-C
(process groups, then SIGKILL after a bounded wait, then any process still carrying this run's marker).
Otherwise (a pipe, CI, KEEP_RUNNING=0) it stops by itself, and says so before its closing list. Parts of
the stack that are not there yet are reported as "not built yet" and skipped. Everything listens on
DEMO_BIND_ADDRESS (default 127.0.0.1).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from local_stack.components import prometheus_binary, start_mongo, start_prometheus, start_service
from local_stack.processes import (
    RUN_MARKER,
    ManagedProcess,
    free_port,
    group_alive,
    port_open,
    python_module,
    stop_groups,
    sweep,
)
from local_stack.replicas import replica_count, start_replicas
from local_stack.viewers import (
    dashboard_queries,
    graph_url,
    prometheus_ui,
    start_evidently_ui,
    start_reports_server,
)
from monitoring_core.paths import MODELS_DIR

ROOT = Path(__file__).resolve().parent.parent
DEMO_EVIDENTLY_CONFIG = Path(__file__).resolve().parent / "demo_evidently.yaml"
DEFAULT_DURATION = 90.0
ALERT_FOR = "10s"  # the demo shortens every alert's `for:` so alerts can fire within two minutes
SCRAPE_INTERVAL = "2s"
MODEL_NAME = "ride_duration"  # the first example: its prediction service is on the contract's port 9696


@dataclass(frozen=True)
class Example:
    """A shipped example model the demo trains, serves and sends a scenario to."""

    name: str
    port: int  # its prediction service's port (the next one up for each further example)
    scenario: str  # the scenario sent to it (a name its folder's scenarios/ or the built-ins resolve)


EXAMPLES = (Example(MODEL_NAME, 9696, "demo"), Example("health_insurance", 9697, "covariate_shift"))
OWN_SCENARIO = "baseline"  # sent to a model folder of one's own (its own `scenarios/demo.yaml` when it has one)


def served_models(models_dir: Path) -> tuple[Example, ...]:
    """Return every model the demo serves from `models_dir`: the examples found there, then every other folder.

    A folder of one's own (any `<name>/model.yaml` beside the examples) gets a prediction service on the next
    port up and its own `demo` scenario, else the built-in `baseline` (reference-like traffic, its false alarms
    scored).
    """
    found = [e for e in EXAMPLES if e.name == MODEL_NAME or (models_dir / e.name / "model.yaml").is_file()]
    known = {e.name for e in EXAMPLES}
    port = max(e.port for e in EXAMPLES) + 1
    for folder in sorted(p.parent for p in models_dir.glob("*/model.yaml")):
        if folder.name in known:
            continue
        scenario = "demo" if (folder / "scenarios" / "demo.yaml").is_file() else OWN_SCENARIO
        found.append(Example(folder.name, port, scenario))
        port += 1
    return tuple(found)


BIND_ADDRESS = "127.0.0.1"  # DEMO_BIND_ADDRESS changes it; the services' own default (0.0.0.0) is for containers
TOKEN_FILE = "monitoring_token"
BATCH_PROGRESS_SECONDS = 10.0


def say(message: str) -> None:
    """Print one progress line of the demo."""
    print(f"[demo] {message}", flush=True)


def built(module: str) -> bool:
    """Return whether a part of the stack exists in this checkout."""
    return importlib.util.find_spec(module) is not None


def pick_port(default: int) -> int:
    """Return the contract's default port when it is free, else any free port."""
    return default if not port_open(default) else free_port()


def port_note(url: str, default: int) -> str:
    """Return a note saying the contract's port was taken when `url` is on another one."""
    return "" if url.endswith(f":{default}") else f"  ({default} was taken)"


def bind_address() -> str:
    """Return the address the demo's servers listen on: DEMO_BIND_ADDRESS, else loopback."""
    return os.environ.get("DEMO_BIND_ADDRESS") or BIND_ADDRESS


@dataclass
class Stack:
    """The processes the demo started, their URLs, and where their files are."""

    workdir: Path
    token: str
    processes: list[ManagedProcess] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    prediction_targets: list[str] = field(default_factory=list)  # each replica's host:port (DEMO_REPLICAS > 1)
    # The RUN_MARKER value every process of this run inherits (main sets it): found and stopped even when
    # it left its process group (nx-27017 kept its port after Ctrl-C in 3 of 4 runs).
    marker: str | None = None
    stopped: bool = False
    left: list[int] = field(default_factory=list)  # what the stop could not end (normally nothing)
    token_given: bool = False  # MONITORING_TOKEN came from the environment (else generated for this run)

    def stop(self, timeout: float = 10.0) -> list[int]:
        """Stop everything the demo started; return what is still alive afterwards (normally nothing).

        The process groups get SIGTERM together (MongoDB's after the others), then SIGKILL after `timeout`
        (a gunicorn master was seen ignoring SIGTERM on a loaded machine); then any process carrying this
        run's marker is SIGKILLed, whatever it did to leave its group; then the groups are checked again.
        """
        # Everything but MongoDB first (together), so the services can still flush their last writes to it.
        clients = [p for p in self.processes if p.name != "mongodb"]
        groups = stop_groups(clients, timeout=timeout)
        groups += stop_groups([p for p in self.processes if p not in clients], timeout=timeout)
        left = sweep(self.marker) if self.marker else []
        left += [g for g in groups if group_alive(g) and g not in left]
        self.stopped, self.left = True, left
        return left


def ensure_prometheus() -> bool:
    """Return whether Prometheus is installed, installing it with apt-get when running as root."""
    if prometheus_binary():
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing Prometheus with apt-get (about 15 s)")
        install = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        if prometheus_binary():
            return True
    say("Prometheus is not installed, so there are no alerts and no detection scoring this time. Install it with")
    say("  sudo apt-get install -y --no-install-recommends prometheus   (Debian/Ubuntu), then run `make demo` again")
    return False


def start_stack(
    workdir: Path,
    models_dir: Path,
    with_prometheus: bool = True,
    mongo_data_dir: Path | None = None,
    evidently_config: Path = DEMO_EVIDENTLY_CONFIG,
    interval: str = SCRAPE_INTERVAL,
    alert_for: str | None = ALERT_FOR,  # None: the rules' own (production) `for:`
    default_ports: bool = True,
    replicas: int = 1,
    bind: str | None = None,
) -> Stack:
    """Start MongoDB (nx-27017), the metrics service, a prediction service per example and Prometheus, in that order.

    The metrics service monitors every model folder of `models_dir`; each one (`served_models`) gets its own
    prediction service (the taxi example on 9696, the contract's port; the others on the ports after it).
    `models_dir` may also be one model folder (it holds a model.yaml): then that model alone is served on 9696.

    Each listens on `bind` (default: DEMO_BIND_ADDRESS, else 127.0.0.1). With `default_ports`, a component
    whose contract port is taken moves to a free one and says so in its line.
    """
    logs = workdir / "logs"
    bind = bind or bind_address()
    single = (models_dir / "model.yaml").is_file()  # one model folder rather than a folder of them
    first_model = models_dir if single else models_dir / MODEL_NAME
    given = os.environ.get("MONITORING_TOKEN")
    token = given or secrets.token_hex(16)
    stack = Stack(workdir=workdir, token=token, marker=os.environ.get(RUN_MARKER), token_given=bool(given))
    port = pick_port if default_ports else (lambda _default: free_port())
    note = port_note if default_ports else (lambda _url, _default: "")
    try:
        mongo, uri = start_mongo(logs, port=port(27017), data_dir=mongo_data_dir, bind=bind)
        stack.processes.append(mongo)
        stack.urls["mongodb"] = uri
        data = f", data in {mongo_data_dir}" if mongo_data_dir else ""
        say(f"MongoDB wire server (nx-27017) at {uri}{data}{note(uri, 27017)}")
        common = {
            "MODEL_NAME": MODEL_NAME,
            "MONITORING_TOKEN": token,
            "MONGODB_URI": uri,
            "MONGODB_DATABASE": "prediction_service",
            "MODELS_DIR": str(models_dir),
            "HOST": bind,
        }
        stack.env = common
        if built("evidently_service"):
            proc, url = start_service(
                "evidently_service", logs, {**common, "EVIDENTLY_CONFIG": str(evidently_config)}, port=port(8085)
            )
            stack.processes.append(proc)
            stack.urls["evidently_service"] = url
            say(f"metrics service at {url} (config {evidently_config}){note(url, 8085)}")
        else:
            say("evidently_service: not built yet")
        if built("prediction_service"):
            env = {
                **common,
                "MODEL_DIR": str(first_model),
                "EVIDENTLY_SERVICE_URL": stack.urls.get("evidently_service", "http://127.0.0.1:9"),
                "PREDICTION_SPOOL_DIR": str(workdir / "spool"),
                "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus_multiproc"),
            }
            if replicas > 1:
                group = start_replicas(replicas, workdir / "replicas", env, port=port(9696))
                stack.processes.extend(group.processes)
                stack.prediction_targets = group.targets
                url = group.url
                say(f"{replicas} prediction service replicas ({', '.join(group.replica_urls)}) behind nginx")
            else:
                proc, url = start_service("prediction_service", logs, env, port=port(9696))
                stack.processes.append(proc)
            stack.urls["prediction_service"] = url
            moved = note(url, 9696)
            say(f"prediction service at {url}" + (f"{moved}: PREDICTION_URL={url} for your client" if moved else ""))
            for example in () if single else served_models(models_dir)[1:]:
                example_env = {
                    **env,
                    "MODEL_DIR": str(models_dir / example.name),
                    "PREDICTION_SPOOL_DIR": str(workdir / f"spool-{example.name}"),
                    "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"prometheus_multiproc-{example.name}"),
                }
                proc, example_url = start_service("prediction_service", logs, example_env, port=port(example.port))
                stack.processes.append(proc)
                stack.urls[f"prediction_service:{example.name}"] = example_url
                stack.prediction_targets.append(example_url.removeprefix("http://"))
                say(f"prediction service for {example.name} at {example_url}{note(example_url, example.port)}")
            if stack.prediction_targets and replicas <= 1:  # Prometheus scrapes every prediction service
                stack.prediction_targets.insert(0, url.removeprefix("http://"))
            say_token(stack)
        else:
            say("prediction_service: not built yet")
        if with_prometheus and ensure_prometheus():
            prometheus_port = port(9090)
            folder = fresh_prometheus_folder(workdir / "prometheus", prometheus_port)
            config = write_prometheus_config(
                folder, stack.urls, prometheus_port, interval, alert_for, stack.prediction_targets
            )
            proc, url = start_prometheus(config, folder, port=prometheus_port, bind=bind)
            stack.processes.append(proc)
            stack.urls["prometheus"] = url
            shortened = f"alert `for:` shortened to {alert_for}" if alert_for else "production alert `for:`"
            say(f"Prometheus at {url} (project rules, scrape every {interval}, {shortened}){note(url, 9090)}")
    except BaseException:
        stack.stop()
        raise
    return stack


def token_file(stack: Stack) -> Path:
    """Write the run's MONITORING_TOKEN to a file only its owner can read; return the file."""
    path = stack.workdir / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(stack.token + "\n")
    return path


def auth_hint(stack: Stack) -> str:
    """Return how a client authenticates to /feedback: where the token is, and the header to send."""
    if stack.token_given:
        source = "the MONITORING_TOKEN you set"
    else:
        source = f"export MONITORING_TOKEN=$(cat {token_file(stack)})"
    return f"{source}; send the header 'Authorization: Bearer $MONITORING_TOKEN'"


def say_token(stack: Stack) -> None:
    """Say how to authenticate to the write endpoints (/feedback, /iterate) of this run."""
    say(f"/feedback needs the token: {auth_hint(stack)}")


def fresh_prometheus_folder(parent: Path, port: int) -> Path:
    """Return an empty folder for this run's Prometheus, removing those of earlier runs that are not running.

    A previous run's samples would otherwise still answer queries (5 minutes of lookback, and no
    staleness markers after a restart) and show its drift during this run's clean phase.
    """
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob("run-*"):
        if old.name.removeprefix("run-").isdigit() and not port_open(int(old.name.removeprefix("run-"))):
            shutil.rmtree(old, ignore_errors=True)
    folder = parent / f"run-{port}"
    folder.mkdir()
    return folder


def write_prometheus_config(
    folder: Path,
    urls: dict[str, str],
    port: int,
    interval: str,
    alert_for: str | None,
    replicas: list[str] | None = None,
) -> Path:
    """Write a loopback copy of prometheus/prometheus.yml and the project's rules; return the config path.

    With `replicas` ("host:port" of each prediction replica), Prometheus scrapes every one of them
    (file discovery) instead of the single prediction_service URL.
    """
    from local_stack.prometheus_config import local_prometheus_config, rule_files, with_short_for, write_file_sd_targets

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules").mkdir(exist_ok=True)
    names = []
    for name, text in rule_files().items():
        (folder / "rules" / name).write_text(
            with_short_for(text, alert_for) if alert_for and "alert:" in text else text
        )
        names.append(f"rules/{name}")
    targets = {
        job: urls[job].removeprefix("http://") for job in ("prediction_service", "evidently_service") if job in urls
    }
    targets["prometheus"] = f"127.0.0.1:{port}"
    if replicas:
        targets["prediction_service"] = write_file_sd_targets(folder / "prediction_service.json", replicas)
    config = folder / "prometheus.yml"
    config.write_text(local_prometheus_config(targets, names, interval=interval))
    return config


def run_batch_flow(stack: Stack, start: datetime, end: datetime, reports_dir: Path) -> list[str]:
    """Run the batch flow over the run's period; return the lines it printed."""
    env = {
        **os.environ,
        **stack.env,
        "REPORTS_DIR": str(reports_dir),
        "PREFECT_HOME": str(stack.workdir / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # A fresh Prefect home migrates its database first: on a busy 2-core machine that can exceed the 20 s default.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    args = python_module("prefect_flows.batch_monitoring", "--start", start.isoformat(), "--end", end.isoformat())
    log = stack.workdir / "logs" / "batch_monitoring.log"
    say(f"batch flow: starting Prefect's temporary API server and importing Evidently first (log {log})")
    for attempt in (1, 2):
        code, out = _run_in_own_group(args, env, log, progress=BATCH_PROGRESS_SECONDS)
        if code == 0:
            return [line for line in out.splitlines() if line.strip()]
        # Prefect's temporary API server sometimes misses its start-up deadline on a loaded machine: retry once.
        retry = attempt == 1 and "ephemeral Prefect API server" in log.read_text(errors="replace")
        say(f"batch flow failed (exit {code}){'; retrying' if retry else ''}; see {log}")
        if not retry:
            break
    return []


def _run_in_own_group(
    args: list[str],
    env: dict[str, str],
    log: Path,
    progress: float = BATCH_PROGRESS_SECONDS,
    limit: float = 600,
    what: str = "batch flow",
) -> tuple[int, str]:
    """Run a command in its own process group (stderr to `log`), saying every `progress` s that it still runs.

    On interruption (or after `limit` seconds) the group is stopped by its PID.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with open(log, "w") as err:
        proc = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, start_new_session=True
        )
        try:
            while True:
                try:
                    out, _ = proc.communicate(timeout=progress)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - began
                    if elapsed > limit:
                        raise
                    say(f"{what}: still running after {elapsed:.0f}s")
        except BaseException:
            # The flow and Prefect's temporary API server it started, together.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    say(f"{what}: finished in {time.monotonic() - began:.0f}s (exit {proc.returncode})")
    return proc.returncode, out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the demo's options (environment variables give the defaults)."""
    p = argparse.ArgumentParser(prog="python -m local_stack.demo", description=__doc__)
    p.add_argument(
        "--duration",
        type=float,
        default=float(os.environ.get("DEMO_DURATION") or DEFAULT_DURATION),
        help="seconds of simulated traffic (env DEMO_DURATION); half clean, half drifted",
    )
    p.add_argument("--rps", type=float, help="requests per second (default: enough to fill the window in half the run)")
    p.add_argument("--scenario", default="demo", help="built-in scenario name or scenario YAML path")
    p.add_argument("--workdir", type=Path, default=ROOT / ".demo", help="logs, MongoDB data, Prometheus data")
    p.add_argument(
        "--models-dir",
        type=Path,
        default=MODELS_DIR,
        help="the model folders: the examples are trained into their folders here, and every folder is monitored",
    )
    p.add_argument(
        "--reports-dir",
        type=Path,
        default=Path(os.environ.get("REPORTS_DIR") or ROOT / "reports"),
        help="where the batch flow writes its reports (env REPORTS_DIR)",
    )
    p.add_argument("--train-rows", type=int, default=30_000, help="rows to train the model on")
    p.add_argument(
        "--keep-running",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="leave the stack up until Ctrl-C (env KEEP_RUNNING=1 or 0; default: only in an interactive terminal)",
    )
    p.add_argument("--free-ports", action="store_true", help="use free ports instead of the contract's defaults")
    p.add_argument(
        "--bind",
        default=bind_address(),
        help="address every server of the demo listens on (env DEMO_BIND_ADDRESS; default 127.0.0.1, loopback only)",
    )
    p.add_argument(
        "--replicas",
        type=replica_count,
        default=os.environ.get("DEMO_REPLICAS") or "1",  # a string default goes through `type` too
        help="prediction service replicas behind one nginx front (env DEMO_REPLICAS)",
    )
    return p.parse_args(argv)


def keep_running(args: argparse.Namespace, interactive: bool | None = None) -> bool:
    """Return whether to leave the stack up at the end: the flag, else KEEP_RUNNING, else whether a person watches."""
    if args.keep_running is not None:
        return args.keep_running
    value = os.environ.get("KEEP_RUNNING", "")
    if value not in ("", "0", "1"):
        raise SystemExit(f"KEEP_RUNNING must be 1 or 0, got {value!r}")
    if value:
        return value == "1"
    return sys.stdin.isatty() and sys.stdout.isatty() if interactive is None else interactive


def main(argv: list[str] | None = None) -> int:
    """Run the demo end to end; return 0 when it completed."""
    args = parse_args(argv)
    keep = keep_running(args)
    started, wall_started = time.monotonic(), time.time()
    # SIGTERM and SIGHUP (the terminal closed) stop the demo like Ctrl-C does: through the `finally` that stops
    # every process it started. SIGINT explicitly too: a shell starting the demo in the background leaves it
    # ignored, and Python keeps that.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    # Inherited by every process this run starts, however it daemonises: the last sweep of the stop finds it.
    os.environ[RUN_MARKER] = f"demo-{os.getpid()}-{secrets.token_hex(6)}"
    args.workdir.mkdir(parents=True, exist_ok=True)
    train_examples(args)
    stack = start_stack(
        args.workdir,
        args.models_dir,
        mongo_data_dir=args.workdir / "mongo",
        default_ports=not args.free_ports,
        replicas=args.replicas,
        bind=args.bind,
    )
    try:
        card, run = simulate(args, stack)
        if run is not None and run.interrupted:
            say("interrupted: skipping the batch flow")
            keep, batch = False, []
        elif run is not None and built("prefect_flows"):
            start = datetime.fromtimestamp(int(run.started_at), UTC)
            end = datetime.fromtimestamp(int(run.ended_at) + 2, UTC)
            say(f"running the batch flow over {start:%H:%M:%S}-{end:%H:%M:%S} UTC")
            batch = run_batch_flow(stack, start, end, args.reports_dir)
        else:
            say("prefect_flows: not built yet" if not built("prefect_flows") else "no traffic, no batch run")
            batch = []
        if keep:
            start_viewers(stack, args)
        else:  # stopped before the closing list, which then says so instead of listing dead links
            shut_down(stack)
        print_where_to_look(stack, args, batch, card, since=wall_started)
        say(f"done in {time.monotonic() - started:.0f}s")
        if keep:
            wait_for_ctrl_c(stack)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP (see _interrupt)
        say("interrupted: stopping")
    finally:
        # A second, impatient Ctrl-C must not cut the stopping short and leave processes behind.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        left = shut_down(stack)
    return 0 if not left else 1


def train_examples(args: argparse.Namespace) -> None:
    """Train the shipped examples into their model folders, then prepare every folder (calibration, estimators)."""
    from health_insurance.train import DEFAULT_REFERENCE_ROWS
    from health_insurance.train import train as train_classifier
    from ride_duration.train import train

    for example in EXAMPLES:  # the committed description (and scenarios) travel with a folder trained elsewhere
        source, target = MODELS_DIR / example.name, args.models_dir / example.name
        if source.resolve() != target.resolve():
            shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("prepared", "*.pkl"))
    say(f"training the model {MODEL_NAME} into {args.models_dir / MODEL_NAME}")
    train("synthetic", args.train_rows, 42, args.models_dir / MODEL_NAME, "2021-01", args.workdir / "data")
    say(f"training the model health_insurance into {args.models_dir / 'health_insurance'}")
    train_classifier(42, args.models_dir / "health_insurance", DEFAULT_REFERENCE_ROWS)
    say(
        f"preparing every model folder of {args.models_dir} (drift calibration, quality estimator; "
        "kept when up to date)"
    )
    log = args.workdir / "logs" / "prepare.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = python_module(
        "monitoring_core.prepare", "--all", str(args.models_dir), "--config", str(DEMO_EVIDENTLY_CONFIG), "--if-stale"
    )
    code, out = _run_in_own_group(command, {**os.environ}, log, progress=BATCH_PROGRESS_SECONDS, what="prepare")
    for line in out.splitlines():
        if "wrote" in line or "up to date" in line or "no performance estimator" in line:
            say(f"prepare: {line}")
    if code != 0:
        say(f"prepare failed (exit {code}); the metrics service calibrates lazily instead; see {log}")


def shut_down(stack: Stack) -> list[int]:
    """Stop the stack once, check that nothing of it is left, and say so; return the PIDs left (none)."""
    if stack.stopped:
        return stack.left
    left = stack.stop()
    if left:
        say(f"could not stop PIDs {' '.join(map(str, left))}: stop them by hand (kill -9)")
    else:
        say("stopped everything the demo started")
    return left


def start_viewers(stack: Stack, args: argparse.Namespace) -> None:
    """Serve the reports folder over HTTP and run the Evidently UI on the workspace (contract ports when free)."""
    port = pick_port if not args.free_ports else (lambda _default: free_port())
    note = (lambda _url, _default: "") if args.free_ports else port_note
    logs = stack.workdir / "logs"
    args.reports_dir.mkdir(parents=True, exist_ok=True)
    proc, url = start_reports_server(args.reports_dir, logs, port=port(8080), bind=args.bind)
    stack.processes.append(proc)
    stack.urls["reports"] = url
    say(f"reports folder {args.reports_dir} served at {url}{note(url, 8080)}")
    workspace = args.reports_dir / "workspace"
    if not workspace.is_dir():
        say(f"Evidently UI not started: no workspace at {workspace} (the batch flow did not run)")
        return
    say("starting the Evidently UI (importing Evidently takes a few seconds)")
    try:
        proc, url = start_evidently_ui(workspace, logs, port=port(8000), bind=args.bind)
    except (OSError, RuntimeError, TimeoutError) as exc:  # the rest of the stack is still worth looking at
        say(f"Evidently UI did not start: {str(exc).splitlines()[0]} (log in {logs})")
        return
    stack.processes.append(proc)
    stack.urls["evidently_ui"] = url
    say(f"Evidently UI at {url} on {workspace}{note(url, 8000)}")


def wait_for_ctrl_c(stack: Stack) -> None:
    """Keep the stack up until Ctrl-C (or SIGTERM); say once if one of its processes exits meanwhile."""
    pids = " ".join(str(p.pid) for p in stack.processes)
    say(f"the stack stays up: press Ctrl-C to stop (it stops process groups {pids} and what they started)")
    reported: set[str] = set()
    while True:
        time.sleep(1)
        for proc in stack.processes:
            if not proc.alive() and proc.name not in reported:
                reported.add(proc.name)
                say(f"{proc.name} exited with {proc.popen.returncode}; see {proc.log_path}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def simulate(args: argparse.Namespace, stack: Stack):
    """Send each example its scenario at once and score them; return (the first example's scorecard, its run).

    The first example runs in this process (its progress and scorecard print here); every further example's
    simulator runs beside it as a process, its output printed when it ends and its scoring kept in
    `scoring-<model>.json` (see `other_detections`).
    """
    if "prediction_service" not in stack.urls:
        say("usage simulation skipped: the prediction service is not built yet")
        return None, None
    from usage_simulation.cli import parser, run_and_score

    rps = args.rps or max(20.0, round(2000.0 / args.duration))
    os.environ["MONITORING_TOKEN"] = stack.token  # the simulators send labels with it
    others = []
    for example in served_models(args.models_dir)[1:]:
        url = stack.urls.get(f"prediction_service:{example.name}")
        if url is None:
            continue
        argv = _simulator_argv(args, stack, example.scenario, url, args.models_dir / example.name, example.name, rps)
        log = stack.workdir / "logs" / f"simulation-{example.name}.log"
        handle = open(log, "w")  # noqa: SIM115 - closed when the process is collected below
        proc = subprocess.Popen(
            python_module("usage_simulation", *argv, "--no-progress"), stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT
        )
        others.append((example, proc, handle, log))
        say(
            f"sending {example.name} the {example.scenario} scenario: {args.duration:.0f}s at {rps:g} rows/s "
            f"(log {log})"
        )
    argv = _simulator_argv(args, stack, args.scenario, stack.urls["prediction_service"], None, MODEL_NAME, rps)
    if not sys.stderr.isatty():
        argv.append("--no-progress")
    say(
        f"sending {MODEL_NAME} the {args.scenario} scenario: {args.duration:.0f}s at {rps:g} rows/s "
        "(half clean, half drifted)"
    )
    try:
        run, card = run_and_score(parser().parse_args(argv))
    finally:
        for example, proc, handle, log in others:
            try:
                proc.wait(timeout=args.duration + 300)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            handle.close()
            say(f"{example.name}: {example.scenario} scenario ended (exit {proc.returncode}):")
            print(log.read_text(errors="replace").rstrip(), flush=True)
    return card, run


def _simulator_argv(
    args: argparse.Namespace, stack: Stack, scenario: str, url: str, model_dir: Path | None, name: str, rps: float
) -> list[str]:
    argv = ["--scenario", scenario, "--url", url, "--duration", str(args.duration), "--rps", str(rps)]
    argv += ["--model-dir", str(model_dir or args.models_dir / MODEL_NAME), "--feedback-delay", "3", "--settle", "40"]
    argv += ["--json", str(args.workdir / ("scoring.json" if name == MODEL_NAME else f"scoring-{name}.json"))]
    if "prometheus" in stack.urls:
        argv += ["--prometheus-url", stack.urls["prometheus"]]
    return argv


def other_detections(args: argparse.Namespace) -> dict[str, tuple[bool, int]]:
    """Return {model: (every expected signal fired, false alarms)} of the further examples' scoring files."""
    found = {}
    for example in served_models(args.models_dir)[1:]:
        path = args.workdir / f"scoring-{example.name}.json"
        if not path.is_file():
            continue
        scoring = (json.loads(path.read_text()) or {}).get("scoring") or {}
        if scoring:
            found[example.name] = (bool(scoring.get("detected_all")), int(scoring.get("false_alarm_count", 0)))
    return found


def newest_drift_report(reports_dir: Path) -> str | None:
    """Return the newest run's drift report, relative to the reports folder, if there is one."""
    from prefect_flows.publish import read_summaries

    for summary in read_summaries(reports_dir) if reports_dir.exists() else []:
        if drift := (summary.get("reports") or {}).get("drift"):
            return drift["html"]
    return None


def print_where_to_look(stack: Stack, args: argparse.Namespace, batch: list[str], card, since: float) -> None:
    """Print the URLs (live ones while the stack stays up), the report files and the detection verdict.

    After a run that stopped by itself (KEEP_RUNNING=0, a pipe) it says the stack has stopped and lists
    files only: its links would answer "connection refused".
    """
    urls = {} if stack.stopped else stack.urls
    if stack.stopped:
        print("\nWhere to look (the stack has stopped: no link of it answers now; KEEP_RUNNING=1 keeps it up)")
    else:
        print("\nWhere to look", flush=True)
    if "prediction_service" in urls:
        print(f"  prediction API      {urls['prediction_service']}/predict  (spec: /openapi.json, metrics: /metrics)")
        for example in served_models(args.models_dir)[1:]:
            if f"prediction_service:{example.name}" in urls:
                print(f"  {example.name + ' API':<19} {urls[f'prediction_service:{example.name}']}/predict")
        print(f"  token (/feedback)   {auth_hint(stack)}")
    if "evidently_service" in urls:
        print(f"  metrics service     {urls['evidently_service']}/metrics")
    if "prometheus" in urls:
        pages = prometheus_ui(urls["prometheus"])
        print(f"  Prometheus alerts   {pages}/alerts")
        for title, queries in dashboard_queries(MODEL_NAME).items():
            print(f"  {'graphs: ' + title:<19} {graph_url(pages, queries)}")
        for example in served_models(args.models_dir)[1:]:  # the other models' graph pages, by model
            if f"prediction_service:{example.name}" in urls:
                for title, queries in dashboard_queries(example.name).items():
                    print(f"  {example.name + ': ' + title:<19} {graph_url(pages, queries)}")
    print(f"  scoring (JSON)      {args.workdir / 'scoring.json'}")
    for line in batch:
        print(f"  batch flow          {line}")
    newest = newest_drift_report(args.reports_dir)
    if "reports" in urls:
        print(f"  reports index       {urls['reports']}/")
        if newest:
            print(f"  newest drift report {urls['reports']}/{newest}")
    else:
        reports = sorted(args.reports_dir.rglob("*.html")) if args.reports_dir.exists() else []
        for path in [p for p in reports if p.stat().st_mtime >= since]:  # this run's reports only
            print(f"  report              {path}")
    workspace = args.reports_dir / "workspace"
    if "evidently_ui" in urls:
        print(f"  Evidently UI        {urls['evidently_ui']}/  (workspace {workspace})")
    else:
        print(f"  Evidently UI        {ROOT / '.venv/bin/evidently'} ui --workspace {workspace} --port 8000")
    print(f"  logs                {stack.workdir / 'logs'}")
    if card is not None:
        verdict = "every expected signal fired" if card.detected_all else "some expected signals did NOT fire"
        print(f"  detection           {MODEL_NAME}: {verdict}; false alarms: {len(card.false_alarms)}", flush=True)
    for name, (all_fired, false_alarms) in other_detections(args).items():
        verdict = "every expected signal fired" if all_fired else "some expected signals did NOT fire"
        print(f"  detection           {name}: {verdict}; false alarms: {false_alarms}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
