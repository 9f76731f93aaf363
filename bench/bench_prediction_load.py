"""Load on the prediction service against baselines, in one run: minimal, bare, full, and naive synchronous.

`python -m bench prediction_load [--duration S] [--connections N] [--threads N] [--workers N] [--modes ...]`

Every mode serves the same model artifact on loopback under gunicorn with the same worker count,
and `wrk` sends POST /predict at the same fixed concurrency, the modes taking turns round by round:
- minimal: bench/minimal_app.py, the simplest Flask app a user could write (no validation, metrics
  or logging; gunicorn's default sync workers) -- the honest baseline;
- bare: the real service (`python -m prediction_service`) with MongoDB logging and forwarding off;
- full: the real service, every prediction queued for MongoDB (nx-27017) and forwarded to a metrics
  sink in batches;
- sync: bench/sync_app.py, the naive course-style design inserting into MongoDB and POSTing to the sink
  inside each request (sync workers);
- course: bench/course_app.py, issue #23's bare baseline: an independent 20-line Flask app serving its own
  course-style (DictVectorizer, LinearRegression) pickle, fitted here on the taxi reference rows (sync workers);
- full_course: `full`, serving that very pickle through the service's loader (a model folder built from
  models/ride_duration/model.yaml, the reference and the pickle).
Targets: full >= 0.85x minimal's throughput and p99 <= 1.5x minimal's, full >= 3x sync throughput,
full_course >= 0.85x course's (issue #23: monitoring costs serving at most 15%).

`--issue23` reproduces that issue's measurement: wrk -t2 -c16 -d12s, 2 gunicorn workers per app, the modes
course, full, full_course and minimal taking turns, median of 2 rounds, forwarding to the real metrics
service. Every figure is printed beside the load average; above 1.5 the bench refuses to run unless
`--allow-busy` is given (then every ratio is marked as taken on a busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from pymongo import MongoClient

from local_stack.components import start_mongo, start_service
from local_stack.processes import ManagedProcess, free_port, http_ok, python_module, wait_until
from local_stack.recorder import Recorder
from monitoring_core.documents import predictions_collection
from ride_duration.schema import FIELD_NAMES

ROOT = Path(__file__).resolve().parent.parent

# The real service's modes (environment switches) and the baselines in bench/ (gunicorn app modules).
SERVICE_MODES = {
    "bare": {"PREDICTION_LOG_TO_MONGODB": "false", "PREDICTION_FORWARD_TO_METRICS": "false"},
    "full": {},
}
SERVICE_MODES["full_course"] = SERVICE_MODES["full"]
APP_MODES = {"minimal": "bench.minimal_app:app", "sync": "bench.sync_app:app", "course": "bench.course_app:app"}
ALL_MODES = ("minimal", "full", "bare", "sync")
ISSUE23_MODES = ("course", "full", "full_course", "minimal")
KNOWN_MODES = (*ALL_MODES, "course", "full_course")
COURSE_MODES = {"course", "full_course"}  # modes serving the course-style pickle
LOGGING_MODES = {"full", "sync", "full_course"}  # modes whose every response must be in MongoDB
QUIET_LOAD = 1.5  # above this 1-minute load average the figures say more about the machine than the service

# wrk runs this: a fixed pool of realistic rides, and one machine-readable line at the end.
WRK_SCRIPT = """
local bodies = {BODIES}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, "/predict", nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Run:
    """One wrk measurement."""

    mode: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    service_cpu_us: float  # CPU of the service's processes per response, background writes included
    mongo_cpu_us: float  # CPU of the MongoDB stand-in (nx-27017) per response
    sink_cpu_us: float  # CPU of the metrics sink (the real metrics service, or this process's recorder) per response
    load: float  # the 1-minute load average when the run ended

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _cpu_seconds(pid: int) -> float:
    """Return the user+system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """Return a process and its descendants (the gunicorn master and its workers)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            pids.extend(_tree(int(child)))
    return pids


def _tree_cpu(pid: int | None) -> float:
    """Return the CPU seconds of a process tree; of this process (the in-process recorder) for None."""
    if pid is None:
        return time.process_time()
    return sum(_cpu_seconds(p) for p in _tree(pid))


@dataclass(frozen=True)
class Target:
    """What one mode runs: the service's URL and pid, and the MongoDB stand-in's pid."""

    url: str
    pid: int
    mongo_pid: int
    sink_pid: int | None  # the real metrics service; None: the recorder in this process


def _bodies(n: int, seed: int) -> list[str]:
    from ride_duration.synthetic import generate_trips

    frame = generate_trips(n, seed=seed)
    rides = []
    for record in frame[list(FIELD_NAMES)].to_dict(orient="records"):
        ride = {k: v for k, v in record.items() if v == v}  # drop NaN (missing passenger_count)
        ride["lpep_pickup_datetime"] = ride["lpep_pickup_datetime"].isoformat()
        for key in ("PULocationID", "DOLocationID", "passenger_count"):
            if key in ride:
                ride[key] = int(ride[key])
        rides.append(json.dumps(ride))
    random.Random(seed).shuffle(rides)
    return rides


def _lua(bodies: list[str]) -> str:
    quoted = ", ".join("[==[" + b + "]==]" for b in bodies)
    return WRK_SCRIPT.replace("{BODIES}", "{" + quoted + "}")


def _wrk(url: str, script: Path, threads: int, connections: int, seconds: float) -> tuple[int, int, int, int, int, int]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if not match:
        raise RuntimeError(f"no RESULT line in wrk output:\n{out}")
    return tuple(int(x) for x in match.groups())  # type: ignore[return-value]


def _queued(url: str, mode: str) -> float:
    """Return the records still waiting in the service's queues and spool (the baselines have none)."""
    if mode not in SERVICE_MODES:
        return 0.0
    text = requests.get(f"{url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(("prediction_queue_size", "prediction_spool_records"))
    )


def _round(mode: str, target: Target, script: Path, args: argparse.Namespace) -> Run:
    pids = _tree(target.pid)
    before = (sum(_cpu_seconds(p) for p in pids), _cpu_seconds(target.mongo_pid), _tree_cpu(target.sink_pid))
    requests_, micros, p50, p99, non_2xx, errors = _wrk(
        target.url, script, args.threads, args.connections, args.duration
    )
    # Let the background writers finish before the next measurement, so no mode pays for another's backlog;
    # the CPU they spend draining counts for this mode.
    wait_until(lambda: _queued(target.url, mode) == 0, timeout=120, what=f"{mode} queues drained")
    after = (sum(_cpu_seconds(p) for p in pids), _cpu_seconds(target.mongo_pid), _tree_cpu(target.sink_pid))
    per = [(a - b) / max(requests_, 1) * 1e6 for a, b in zip(after, before, strict=True)]
    return Run(mode, requests_, micros / 1e6, p50 / 1000, p99 / 1000, non_2xx, errors, *per, os.getloadavg()[0])


def start_baseline(app: str, workdir: Path, env: dict[str, str], workers: int) -> tuple[ManagedProcess, str]:
    """Start a bench/ baseline app under gunicorn's default (sync) workers; return it and its URL once healthy."""
    port = free_port()
    args = python_module("gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}", app)
    proc = ManagedProcess(app, args, workdir / f"{app.split(':')[0]}-{port}.log", env=env, cwd=ROOT).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(lambda: http_ok(f"{url}/health"), timeout=60)
    return proc, url


def _median(runs: list[Run]) -> Run:
    """Return the run with the median throughput (its own latencies, not a mix of runs)."""
    return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]


def _train(out: Path) -> Path:
    from ride_duration.train import train

    train(source="synthetic", rows=8_000, seed=7, out_dir=out, month="2021-01", data_dir=out)
    return out / "model.pkl"


def _course_folder(trained: Path, out: Path) -> Path:
    """Fit the course-style (DictVectorizer, LinearRegression) pipeline on the reference rows; return its folder.

    The folder is a model folder the service serves (model.yaml and reference.parquet copied from the
    trained one, the course's pickle as model.pkl); bench/course_app.py serves the same pickle. The
    vectorizer is fitted on the dicts the service's loader gives it (the described features as numbers,
    missing ones left out); the pickup time is left out of the fit, so both apps ignore it alike.
    """
    import pickle

    import pandas as pd
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression

    from ride_duration.schema import TARGET

    reference = pd.read_parquet(trained / "reference.parquet")
    names = [name for name in FIELD_NAMES if name != "lpep_pickup_datetime"]
    dicts = [{k: v for k, v in row.items() if v == v} for row in reference[names].to_dict(orient="records")]
    dv = DictVectorizer()
    model = LinearRegression().fit(dv.fit_transform(dicts), reference[TARGET].to_numpy())
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.yaml", "reference.parquet"):
        shutil.copyfile(trained / name, out / name)
    with open(out / "model.pkl", "wb") as f_out:
        pickle.dump((dv, model), f_out)
    return out


def main(argv: list[str]) -> int:
    """Run the three modes and print throughput, p50/p99 and the ratios against the targets."""
    parser = argparse.ArgumentParser(prog="python -m bench prediction_load", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of measured load per mode and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each mode's median round is reported")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each mode")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (fixed)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gunicorn workers; with more, gthread workers share keep-alive connections unevenly run to run",
    )
    parser.add_argument(
        "--worker-class", default="buffered", help="WORKER_CLASS of the real service's modes (buffered|gthread|gevent)"
    )
    parser.add_argument(
        "--modes", default=",".join(ALL_MODES), help=f"comma-separated subset of {','.join(KNOWN_MODES)}"
    )
    parser.add_argument(
        "--sink",
        choices=("recorder", "metrics"),
        default="recorder",
        help="where `full` forwards: an in-process recorder, or the real metrics service (evidently_service)",
    )
    parser.add_argument(
        "--issue23",
        action="store_true",
        help="issue #23's measurement: modes course,full,full_course,minimal, 12 s, 2 workers, 2 rounds, "
        "the real metrics service",
    )
    parser.add_argument(
        "--allow-busy", action="store_true", help=f"run even above load {QUIET_LOAD} (the figures are marked)"
    )
    args = parser.parse_args(argv)
    if args.issue23:
        args.modes, args.duration, args.workers, args.sink = ",".join(ISSUE23_MODES), 12.0, 2, "metrics"
        args.rounds, args.threads, args.connections = max(args.rounds, 2), 2, 16
    modes = args.modes.split(",")
    if unknown := set(modes) - set(KNOWN_MODES):
        parser.error(f"unknown mode(s) {sorted(unknown)}")
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    load = os.getloadavg()
    print(f"[bench] load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores", flush=True)
    if load[0] > QUIET_LOAD:
        if not args.allow_busy:
            print(
                f"[bench] REFUSED: load {load[0]:.2f} > {QUIET_LOAD}: other work on this machine would be measured "
                "too. Wait for a quiet machine, or pass --allow-busy to take within-run ratios anyway.",
                file=sys.stderr,
            )
            return 2
        print(
            f"[bench] WARNING: load {load[0]:.2f} > {QUIET_LOAD}: a BUSY machine. Only the within-round ratios "
            "mean anything; the absolute req/s do not, and the quiet-machine figure is still to be taken.",
            flush=True,
        )

    workdir = Path(tempfile.mkdtemp(prefix="bench_prediction_load_"))
    print(f"[bench] training a model in {workdir}", flush=True)
    model_path = _train(workdir / "artifacts")
    course_dir = _course_folder(model_path.parent, workdir / "course") if COURSE_MODES & set(modes) else None
    script = workdir / "predict.lua"
    script.write_text(_lua(_bodies(500, seed=11)))
    mongo, uri = start_mongo(workdir / "mongo")
    sink = Recorder(keep_bodies=False).start()
    metrics_service = None
    sink_url, sink_pid = sink.url, None
    if args.sink == "metrics":
        metrics_service, sink_url = start_service(
            "evidently_service",
            workdir / "metrics",
            {"REFERENCE_PATH": str(model_path.parent / "reference.parquet")},
            timeout=120,
        )
        sink_pid = metrics_service.pid
    services: dict[str, tuple] = {}
    targets: dict[str, Target] = {}
    warmup: dict[str, int] = {}
    failed_logging = False
    rounds: dict[str, list[Run]] = {mode: [] for mode in modes}
    try:
        for mode in modes:
            folder = course_dir if mode in COURSE_MODES and course_dir is not None else model_path.parent
            env = {
                "MODEL_DIR": str(folder),  # the trained folder, or the course pickle's (the service)
                "MODEL_PATH": str(folder / "model.pkl"),  # the bench's own baseline apps read the file
                "MONGODB_URI": uri,
                "MONGODB_DATABASE": f"bench_{mode}",
                "EVIDENTLY_SERVICE_URL": sink_url,
                "WORKERS": str(args.workers),
                "WORKER_CLASS": args.worker_class,
                "PREDICTION_SPOOL_DIR": str(workdir / f"spool-{mode}"),
                **SERVICE_MODES.get(mode, {}),
            }
            if mode in APP_MODES:
                services[mode] = start_baseline(APP_MODES[mode], workdir / mode, env, args.workers)
            else:
                services[mode] = start_service("prediction_service", workdir / mode, env)
            targets[mode] = Target(services[mode][1], services[mode][0].pid, mongo.pid, sink_pid)
            # Warm-up: connections, caches, the first batches; its responses are counted for the logging check.
            warmup[mode] = _wrk(services[mode][1], script, args.threads, args.connections, args.warmup)[0]
            wait_until(lambda m=mode: _queued(services[m][1], m) == 0, timeout=120, what="warm-up drained")
        # Modes take turns, so a burst of load from elsewhere on the machine hits all of them alike.
        for number in range(1, args.rounds + 1):
            # And the order rotates, so no mode always runs right after the same other one.
            for mode in modes[number % len(modes) :] + modes[: number % len(modes)]:
                run = _round(mode, targets[mode], script, args)
                rounds[mode].append(run)
                print(
                    f"[bench] round {number} {mode}: {run.rps:.0f} req/s, p50 {run.p50_ms:.1f} ms, "
                    f"p99 {run.p99_ms:.1f} ms, CPU {run.service_cpu_us:.0f} us/response, load {run.load:.2f}",
                    flush=True,
                )
        for mode in modes:
            if mode in LOGGING_MODES:
                logged = predictions_collection(MongoClient(uri), f"bench_{mode}").count_documents({})
                served = warmup[mode] + sum(r.requests for r in rounds[mode])
                # wrk does not count responses still in flight when it stops, so documents may exceed them.
                verdict = "every one logged" if logged >= served else f"{served - logged} MISSING"
                print(
                    f"[bench] {mode}: {logged} documents in MongoDB for {served} responses wrk counted: {verdict}",
                    flush=True,
                )
                failed_logging |= logged < served
    finally:
        for proc, _ in services.values():
            proc.stop(timeout=30)
        if metrics_service is not None:
            metrics_service.stop(timeout=30)
        sink.stop()
        mongo.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # model, spools and logs of this run only
    runs = {mode: _median(rounds[mode]) for mode in modes}

    # The load during a run includes the bench's own processes (wrk, the apps, MongoDB: about 3-4 on 2 cores);
    # whether the machine was quiet is judged from the load before the bench started.
    loads = [run.load for mode_runs in rounds.values() for run in mode_runs]
    busy = load[0] > QUIET_LOAD
    print(
        f"\nmedian of {args.rounds} rounds, {args.connections} connections, {args.workers} workers, sink {args.sink}; "
        f"CPU in microseconds per response (process tree); load average {load[0]:.2f} before, "
        f"{min(loads, default=0):.2f}-{max(loads, default=0):.2f} during (the bench's own included)"
        + ("  ** BUSY MACHINE: read only the ratios **" if busy else "")
    )
    print(
        f"{'mode':<11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8} "
        f"{'svc CPU':>8} {'mongo CPU':>9} {'sink CPU':>8} {'load':>5}"
    )
    for run in runs.values():
        print(
            f"{run.mode:<11} {run.rps:>8.0f} {run.p50_ms:>8.2f} {run.p99_ms:>8.2f} {run.non_2xx:>8} "
            f"{run.socket_errors:>8} {run.service_cpu_us:>8.0f} {run.mongo_cpu_us:>9.0f} {run.sink_cpu_us:>8.0f} "
            f"{run.load:>5.2f}"
        )

    # Ratios within a round (modes measured back to back), then the median over rounds: load from
    # elsewhere on the machine drifts between rounds far more than within one.
    def ratios(a: str, b: str, value) -> list[float]:
        return [value(x) / value(y) for x, y in zip(rounds[a], rounds[b], strict=True)]

    wanted = [
        ("full", "minimal", "throughput", lambda r: r.rps, ">=", 0.85),
        ("full", "minimal", "p99", lambda r: r.p99_ms, "<=", 1.5),
        # What one core would serve if the service had it to itself: on a machine shared with other jobs,
        # a many-threaded gthread worker gets more CPU time than one sync worker, so raw throughput
        # flatters `full`; CPU per response does not.
        (
            "minimal",
            "full",
            "CPU per response (= full / minimal CPU-bound throughput)",
            lambda r: r.service_cpu_us,
            ">=",
            0.85,
        ),
        ("bare", "minimal", "throughput", lambda r: r.rps, None, None),
        ("full", "sync", "throughput", lambda r: r.rps, ">=", 3.0),
        # Issue #23: the same fitted pipeline behind our service and behind a bare course-style app.
        ("full_course", "course", "throughput", lambda r: r.rps, ">=", 0.85),
        ("full_course", "course", "p99", lambda r: r.p99_ms, None, None),
        ("course", "full_course", "CPU per response", lambda r: r.service_cpu_us, ">=", 0.85),
        ("full", "course", "throughput (our taxi model vs the bare app's own)", lambda r: r.rps, None, None),
    ]
    checks = [check for check in wanted if {check[0], check[1]} <= set(modes)]
    if checks:
        print("\nper-round ratios (round 1, 2, ...), median over rounds:")
    for a, b, what, value, op, target in checks:
        per_round = ratios(a, b, value)
        median = statistics.median(per_round)
        rounds_text = " ".join(f"{x:.2f}" for x in per_round)
        verdict = (
            ""
            if op is None
            else f"  (target {op} {target})  "
            + ("met" if (median >= target if op == ">=" else median <= target) else "MISSED")
        )
        print(f"{a + ' / ' + b + ' ' + what}\n    {rounds_text:<30} median {median:5.2f}{verdict}")
    if busy:
        print(f"(started at load {load[0]:.2f} > {QUIET_LOAD}: within-round ratios only; re-run quiet)")
    failed = failed_logging or any(run.non_2xx or run.socket_errors for run in runs.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
