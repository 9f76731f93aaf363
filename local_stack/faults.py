"""Fault injection under steady load: MongoDB outage, metrics-service restart, worker restarts; measured figures.

One scenario, run by `tests/reliability/test_faults_under_load.py` (short) and `python -m bench reliability`
(longer), so the README's table comes from the code the tests run.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict, dataclass, field

import requests

from local_stack.processes import wait_until
from local_stack.reliability import Stack, SteadyTraffic, children
from local_stack.sample_rows import sample_row
from prediction_service.spool import pid_alive

DRIFT_METRIC = "evidently_drifted_features_share"
PHASES = ("steady", "mongo_outage", "metrics_restart", "worker_sigterm", "worker_sigkill", "group_sigkill")


@dataclass
class Figures:
    """What the scenario measured; `phases` maps a phase to its sent / failed / lost counts."""

    rps: float
    outage_seconds: float
    evaluation_period_seconds: float
    sent: int = 0
    failed: int = 0
    accepted: int = 0
    documents: int = 0
    lost: int = 0
    duplicates: int = 0
    unexpected_documents: int = 0
    mongo_recovery_seconds: float = 0.0  # MongoDB back -> spool empty
    spooled_peak: float = 0.0
    metrics_start_seconds: float = 0.0  # metrics service started -> /health answers
    drift_back_seconds: float = 0.0  # /health answers -> drift metrics exported again
    first_evaluation_seconds: float = 0.0  # what that first evaluation took to compute (its own gauge)
    window_rows_after_restart: float = 0.0
    worker_restart_seconds: float = 0.0  # SIGKILL -> the master has a new worker
    group_answered_before_kill: int = 0  # answered in the last phase_requests/2 before the whole group died
    group_lost: int = 0  # of those, not in MongoDB after the restart (the write-ahead log's job)
    group_restart_seconds: float = 0.0  # restarted -> every recovered record in MongoDB
    wiped_ids: int = 0  # distinct request ids sent after MongoDB came back empty
    wiped_sends_per_id: int = 0
    wiped_documents: int = 0
    wiped_duplicates: int = 0  # documents beyond one per id: the unique index's job
    wiped_indexes_missing: list[str] | None = None  # /health after the wipe
    phases: dict[str, dict[str, int]] = field(default_factory=dict)
    failure_samples: list[str] = field(default_factory=list)

    def drift_back_bound(self) -> float:
        """Return the promise: drift exported within one evaluation period, plus that evaluation's own time."""
        return self.evaluation_period_seconds + self.first_evaluation_seconds + 0.1  # + the 0.05 s poll

    def as_dict(self) -> dict:
        return asdict(self)


def _metric(stack: Stack, url: str, name: str) -> float | None:
    lines = [line for line in stack.metric_lines(url, name) if line.split("{")[0].split(" ")[0] == name]
    return max(float(line.rsplit(" ", 1)[1]) for line in lines) if lines else None


def _drift_exported(stack: Stack) -> bool:
    return _metric(stack, stack.metrics_url, DRIFT_METRIC) is not None


def _run_phase(traffic: SteadyTraffic, name: str) -> None:
    traffic.phase = name


def _restart_worker(stack: Stack, sig: int, timeout: float = 30) -> float:
    """Send `sig` to one gunicorn worker; return the seconds until the master runs a replacement."""
    before = children(stack.prediction.pid)
    victim = before[0]
    started = time.monotonic()
    os.kill(victim, sig)
    wait_until(lambda: not pid_alive(victim) or victim not in children(stack.prediction.pid), timeout, "worker gone")
    wait_until(lambda: len(set(children(stack.prediction.pid)) - {victim}) >= len(before), timeout, "new worker")
    return time.monotonic() - started


def run_scenario(
    stack: Stack,
    rps: float = 40,
    outage_seconds: float = 5,
    phase_requests: int = 200,
    evaluation_period_seconds: float = 2.0,
    progress: bool = False,
) -> Figures:
    """Drive steady traffic through a started `stack` while injecting each fault in turn; return the figures."""
    figures = Figures(rps, outage_seconds, evaluation_period_seconds)

    def say(message: str) -> None:
        if progress:
            print(f"[faults] {time.strftime('%H:%M:%S')} {message}", flush=True)

    with SteadyTraffic(stack.prediction_url, rps, "faults", token=stack.token) as traffic:
        wait_until(lambda: _drift_exported(stack), 120, "first drift verdict", 0.2)
        traffic.wait_sent(phase_requests)
        say(f"steady: {traffic.sent} sent, drift metrics exported")

        # (a) MongoDB stops for `outage_seconds` and comes back on the same port with its data.
        _run_phase(traffic, "mongo_outage")
        stack.mongo.stop()
        outage_end = time.monotonic() + outage_seconds
        while time.monotonic() < outage_end:
            figures.spooled_peak = max(
                figures.spooled_peak, _metric(stack, stack.prediction_url, "prediction_spool_records") or 0
            )
            time.sleep(0.2)  # the outage's length is the experiment's parameter, not a readiness wait
        stack.start_mongo()
        back = time.monotonic()
        wait_until(
            lambda: _metric(stack, stack.prediction_url, "prediction_spool_records") == 0, 120, "spool replayed", 0.1
        )
        figures.mongo_recovery_seconds = time.monotonic() - back
        say(
            f"MongoDB outage {outage_seconds:g} s: spool peak {figures.spooled_peak:.0f}, "
            f"replayed {figures.mongo_recovery_seconds:.1f} s after restart"
        )
        traffic.wait_sent(phase_requests // 2)

        # (b) The metrics service stops and restarts, re-warming its window from MongoDB.
        _run_phase(traffic, "metrics_restart")
        stack.metrics.stop()
        traffic.wait_sent(phase_requests // 2)
        started = time.monotonic()
        stack.start_metrics()
        ready = time.monotonic()
        wait_until(lambda: _drift_exported(stack), 120, "drift metrics after restart", 0.05)
        figures.metrics_start_seconds = ready - started
        figures.drift_back_seconds = time.monotonic() - ready
        figures.window_rows_after_restart = _metric(stack, stack.metrics_url, "evidently_window_rows") or 0
        figures.first_evaluation_seconds = (
            _metric(stack, stack.metrics_url, "evidently_evaluation_duration_seconds") or 0.0
        )
        say(
            f"metrics service: healthy {figures.metrics_start_seconds:.1f} s after start, drift back "
            f"{figures.drift_back_seconds:.2f} s later ({figures.window_rows_after_restart:.0f} rows re-warmed)"
        )
        traffic.wait_sent(phase_requests // 2)

        # (c) One worker is restarted gracefully (SIGTERM), then one crashes (SIGKILL); the master replaces each.
        # Half a second of the new phase's tag before the signal: what a worker still holds then carries it.
        _run_phase(traffic, "worker_sigterm")
        traffic.wait_sent(max(1, int(rps / 2)))
        _restart_worker(stack, signal.SIGTERM)
        traffic.wait_sent(phase_requests // 2)
        _run_phase(traffic, "worker_sigkill")
        traffic.wait_sent(max(1, int(rps / 2)))
        figures.worker_restart_seconds = _restart_worker(stack, signal.SIGKILL)
        traffic.wait_sent(phase_requests // 2)
        say(f"workers: SIGKILLed worker replaced in {figures.worker_restart_seconds:.1f} s")

        # (d) The whole service is SIGKILLed at once (OOM killer, node loss), then started again on its port.
        # Requests during the downtime fail (no answer); every answered one must reach MongoDB.
        _run_phase(traffic, "group_sigkill")
        traffic.wait_sent(phase_requests // 2)
        stack.kill_prediction_group()
        traffic.phase = "down"  # failures while nothing listens are not answered, so they cannot be lost
        restarted = time.monotonic()
        stack.start_prediction()
        say(f"whole group SIGKILLed and restarted in {time.monotonic() - restarted:.1f} s")
        _run_phase(traffic, "steady")
        traffic.wait_sent(phase_requests // 2)

    stack.wait_drained()
    figures.group_restart_seconds = time.monotonic() - restarted
    ids = [d["request_id"] for d in stack.predictions().find({}, {"request_id": 1, "_id": 0})]
    accepted = set(traffic.accepted)
    stored = set(ids)
    figures.sent, figures.failed, figures.accepted = traffic.sent, len(traffic.failures), len(accepted)
    figures.documents, figures.duplicates = len(ids), len(ids) - len(stored)
    figures.lost = len(accepted - stored)
    figures.unexpected_documents = len(stored - accepted)
    figures.failure_samples = traffic.failures[:10]
    for phase in PHASES:
        tag = f"-{phase}-"
        figures.phases[phase] = {
            "sent": sum(tag in i for i in accepted) + sum(tag in f for f in traffic.failures),
            "failed": sum(tag in f for f in traffic.failures),
            "lost": sum(tag in i for i in accepted - stored),
        }
    figures.group_answered_before_kill = (
        figures.phases["group_sigkill"]["sent"] - figures.phases["group_sigkill"]["failed"]
    )
    figures.group_lost = figures.phases["group_sigkill"]["lost"]
    return figures


def run_wiped_database(stack: Stack, figures: Figures, ids: int = 50, sends_per_id: int = 5) -> Figures:
    """MongoDB comes back empty (no data, no indexes); each of `ids` request ids is then sent `sends_per_id` times.

    A client retrying a request it got no answer for sends its id again: one document per id must remain.
    """
    stack.wipe_mongo()
    session = requests.Session()
    for round_ in range(sends_per_id):
        for i in range(ids):
            body = {**sample_row(), "request_id": f"wiped-{i}"}
            session.post(f"{stack.prediction_url}/predict", json=body, timeout=10).raise_for_status()
        if round_ == 0:
            time.sleep(0.3)  # let the first copies reach MongoDB on their own batch: the retries come later
    stack.wait_drained()
    documents = [d["request_id"] for d in stack.predictions().find({"request_id": {"$regex": "^wiped-"}})]
    figures.wiped_ids, figures.wiped_sends_per_id = ids, sends_per_id
    figures.wiped_documents = len(documents)
    figures.wiped_duplicates = len(documents) - len(set(documents))
    health = wait_until(
        lambda: (
            (h := session.get(f"{stack.prediction_url}/health", timeout=5).json())["mongodb"]["indexes_missing"]
            is not None
            and h
        ),
        30,
        "index check in /health",
        0.2,
    )
    figures.wiped_indexes_missing = health["mongodb"]["indexes_missing"]
    return figures


def format_table(figures: Figures) -> str:
    """Return the figures as a Markdown table (the README's format)."""
    rows = [
        ("requests sent", figures.sent),
        ("failed predictions (client saw no 200)", figures.failed),
        ("accepted predictions", figures.accepted),
        ("documents in MongoDB", figures.documents),
        ("documents lost (accepted, not stored)", figures.lost),
        ("duplicate documents", figures.duplicates),
        ("documents without an accepted answer", figures.unexpected_documents),
        (f"MongoDB outage {figures.outage_seconds:g} s: records spooled (peak)", f"{figures.spooled_peak:.0f}"),
        ("MongoDB back -> spool replayed", f"{figures.mongo_recovery_seconds:.1f} s"),
        ("metrics service start -> healthy", f"{figures.metrics_start_seconds:.1f} s"),
        (
            f"healthy -> drift metrics back (period {figures.evaluation_period_seconds:g} s)",
            f"{figures.drift_back_seconds:.2f} s",
        ),
        ("window rows re-warmed from MongoDB", f"{figures.window_rows_after_restart:.0f}"),
        ("SIGKILLed worker replaced", f"{figures.worker_restart_seconds:.1f} s"),
        (
            "whole group SIGKILLed: answered before the kill / answered but lost",
            f"{figures.group_answered_before_kill} / {figures.group_lost}",
        ),
    ]
    if figures.wiped_ids:
        rows.append(
            (
                f"MongoDB wiped, {figures.wiped_ids} ids sent {figures.wiped_sends_per_id}x: documents / duplicates",
                f"{figures.wiped_documents} / {figures.wiped_duplicates}",
            )
        )
    rows += [
        (f"phase {name}: sent / failed / lost", f"{p['sent']} / {p['failed']} / {p['lost']}")
        for name, p in figures.phases.items()
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'figure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)
