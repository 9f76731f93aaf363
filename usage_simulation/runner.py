"""Send rows at a target rate with bounded concurrency, phase by phase, and keep a timeline for scoring."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from tqdm import tqdm

from monitoring_core.description import REQUEST_ID
from usage_simulation.feedback import FeedbackSender, FeedbackStats
from usage_simulation.rows import PhaseFeed
from usage_simulation.scenario import Scenario, ScheduledPhase, phase_at


@dataclass(frozen=True)
class RunConfig:
    """How hard and how long to drive the prediction service."""

    url: str = "http://127.0.0.1:9696"
    rps: float = 20.0
    duration_seconds: float | None = None  # None: the scenario's own length (or rows / rps)
    rows: int | None = None
    concurrency: int = 8
    timeout_seconds: float = 5.0
    feedback_share: float = 0.8
    feedback_delay_seconds: float = 5.0
    seed: int = 42
    token: str | None = None
    progress: bool = True

    def total_seconds(self, scenario: Scenario) -> float:
        """Return the run length: --duration, else --rows at the target rate, else the scenario's."""
        if self.duration_seconds is not None:
            return self.duration_seconds
        if self.rows is not None:
            return self.rows / self.rps
        return scenario.natural_duration()


@dataclass
class PhaseCounts:
    """Outcomes of the requests sent during one phase."""

    sent: int = 0
    ok: int = 0
    rejected: int = 0
    errors: int = 0


@dataclass
class PhaseWindow:
    """Where a phase actually ran, in wall-clock seconds since the epoch."""

    index: int
    name: str
    clean: bool
    outage: bool
    start: float
    end: float


@dataclass
class RunResult:
    """What a run did: counts per phase, the phases' wall-clock windows, and every send time."""

    scenario: str
    started_at: float
    ended_at: float = 0.0
    interrupted: bool = False
    phases: list[PhaseWindow] = field(default_factory=list)
    counts: dict[int, PhaseCounts] = field(default_factory=dict)
    send_times: array = field(default_factory=lambda: array("d"))
    feedback: FeedbackStats = field(default_factory=FeedbackStats)

    def totals(self) -> PhaseCounts:
        """Return the counts summed over the phases."""
        total = PhaseCounts()
        for c in self.counts.values():
            total.sent, total.ok = total.sent + c.sent, total.ok + c.ok
            total.rejected, total.errors = total.rejected + c.rejected, total.errors + c.errors
        return total

    def rows_between(self, start: float, end: float) -> int:
        """Return how many requests were sent in [start, end) (wall-clock seconds)."""
        return bisect_left(self.send_times, end) - bisect_left(self.send_times, start)

    def summary(self) -> dict:
        """Return the run as plain data (for printing and --json)."""
        # The rate over the sending phases: the wait for late labels at the end sends no rows.
        sending_end = self.phases[-1].end if self.phases else self.ended_at
        total, elapsed = self.totals(), max(sending_end - self.started_at, 1e-9)
        return {
            "scenario": self.scenario,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "interrupted": self.interrupted,
            "achieved_rps": round(total.sent / elapsed, 2),
            **{k: getattr(total, k) for k in ("sent", "ok", "rejected", "errors")},
            "feedback": vars(self.feedback).copy(),
            "phases": [{**vars(w), **vars(self.counts.get(w.index, PhaseCounts()))} for w in self.phases],
        }


def classify(status: int | None) -> str:
    """Map an HTTP status (None: no answer) to ok / rejected (the client's fault) / errors."""
    if status is not None and 200 <= status < 300:
        return "ok"
    if status is not None and 400 <= status < 500:
        return "rejected"
    return "errors"


@contextmanager
def stop_on_signal(stop: threading.Event) -> Iterator[None]:
    """While inside, Ctrl-C (SIGINT) and SIGTERM set `stop`; a second one raises KeyboardInterrupt.

    The sending loop checks `stop` between rows. A KeyboardInterrupt raised wherever the main thread happens to
    be (inside a lock of the thread pool, say) could leave the run unable to finish; the second signal is the way
    out of a wait that should not be awaited. Only the main thread can install handlers: elsewhere (the demo and
    tests run the simulator from other threads) Ctrl-C keeps its default KeyboardInterrupt.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Runner:
    """Drives one scenario run; `run()` returns a RunResult even when interrupted with Ctrl-C."""

    def __init__(self, config: RunConfig, scenario: Scenario, feed: PhaseFeed) -> None:
        self.config, self.scenario, self.feed = config, scenario, feed
        self.schedule: list[ScheduledPhase] = scenario.schedule(config.total_seconds(scenario))
        self.run_id = uuid.uuid4().hex[:8]
        self._local = threading.local()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self.stop = threading.Event()  # set by Ctrl-C / SIGTERM while running (stop_on_signal), or by a caller

    def _session(self) -> requests.Session:
        # One Session per worker thread: requests' Session is not thread-safe.
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _send(self, body: dict, label: Any, counts: PhaseCounts, feedback: FeedbackSender) -> None:
        try:
            try:
                response = self._session().post(
                    f"{self.config.url}/predict", json=body, timeout=self.config.timeout_seconds
                )
                status = response.status_code
            except requests.RequestException:
                response, status = None, None
            outcome = classify(status)
            with self._lock:
                setattr(counts, outcome, getattr(counts, outcome) + 1)
            if outcome == "ok":
                request_id = _response_id(response) or body.get(REQUEST_ID)
                if request_id:
                    feedback.schedule(request_id, label)
        finally:
            self._slots.release()

    def run(self) -> RunResult:
        """Send traffic phase by phase until the run is over, the rows are sent, or Ctrl-C."""
        with stop_on_signal(self.stop):
            return self._run()

    def _run(self) -> RunResult:
        cfg = self.config
        planned_rows = cfg.rows or int(cfg.rps * sum(p.end - p.start for p in self.schedule if not p.phase.outage))
        self.feed.prime([(p.index, p.phase) for p in self.schedule])
        result = RunResult(scenario=self.scenario.name, started_at=time.time())
        feedback = FeedbackSender(
            cfg.url,
            self.feed.description.target_column,
            cfg.feedback_share,
            cfg.feedback_delay_seconds,
            cfg.seed,
            cfg.token,
            cfg.timeout_seconds,
        ).start()
        bar = tqdm(total=planned_rows, unit="row", disable=not cfg.progress, dynamic_ncols=True)
        pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="send")
        started = time.monotonic()
        current: ScheduledPhase | None = None
        try:
            next_due, seq = started, 0
            while cfg.rows is None or seq < cfg.rows:
                if self.stop.is_set():
                    result.interrupted = True
                    break
                now = time.monotonic()
                placed = phase_at(self.schedule, now - started)
                if placed is None:
                    break
                if placed is not current:
                    current = self._enter_phase(result, placed, started)
                if placed.phase.outage:
                    # Nothing is sent; wake at the phase's end (or at a stop: checked every 0.2 s).
                    time.sleep(min(0.2, max(started + placed.end - now, 0.0)))
                    next_due = time.monotonic()  # no burst to catch up after the outage
                    continue
                if now < next_due:
                    time.sleep(min(next_due - now, 0.2))
                    continue
                if not self._slots.acquire(timeout=0.2):
                    continue  # every slot busy: check for a stop, then wait again
                body, label = self.feed.next(placed.index, placed.phase)
                body = {**body, REQUEST_ID: f"sim-{self.run_id}-{seq}"}
                counts = result.counts[placed.index]
                counts.sent += 1
                result.send_times.append(time.time())
                pool.submit(self._send, body, label, counts, feedback)
                bar.update(1)
                if seq % 25 == 0:
                    self._show(bar, result)
                seq += 1
                # Pace from the schedule, not from the last send, but never run more than 1 s behind.
                next_due = max(next_due + 1.0 / cfg.rps, time.monotonic() - 1.0)
        except KeyboardInterrupt:
            result.interrupted = True
        finally:
            # At most `concurrency` requests are queued or in flight (the slots): let them finish,
            # unless a second Ctrl-C says not to wait (each ends within its timeout anyway).
            try:
                pool.shutdown(wait=True)
            except KeyboardInterrupt:
                result.interrupted = True
                pool.shutdown(wait=False, cancel_futures=True)
            if result.phases:
                result.phases[-1].end = time.time()
            if cfg.progress and not result.interrupted and feedback.pending():
                bar.write(f"waiting for {feedback.pending()} labels still on their way (Ctrl-C drops them)")
            result.interrupted = feedback.close(drain=not result.interrupted) or result.interrupted
            result.feedback = feedback.stats
            result.ended_at = time.time()
            self._show(bar, result)
            bar.close()
        return result

    def _enter_phase(self, result: RunResult, placed: ScheduledPhase, started_mono: float) -> ScheduledPhase:
        now = time.time()
        if result.phases:
            result.phases[-1].end = now
        phase = placed.phase
        result.phases.append(PhaseWindow(placed.index, phase.name, phase.clean, phase.outage, now, now))
        result.counts[placed.index] = PhaseCounts()
        return placed

    def _show(self, bar: tqdm, result: RunResult) -> None:
        total = result.totals()
        phase = result.phases[-1].name if result.phases else "-"
        bar.set_postfix(phase=phase, ok=total.ok, rejected=total.rejected, errors=total.errors, refresh=False)


def _response_id(response: requests.Response | None) -> str | None:
    try:
        return response.json().get(REQUEST_ID) if response is not None else None
    except ValueError:
        return None


def format_summary(result: RunResult) -> str:
    """Return the human summary printed at the end of every run."""
    s = result.summary()
    fb = s["feedback"]
    lines = [
        f"scenario {s['scenario']}: {'INTERRUPTED after' if s['interrupted'] else 'ran'} "
        f"{s['ended_at'] - s['started_at']:.1f}s at {s['achieved_rps']} req/s",
        f"  sent {s['sent']}  ok {s['ok']}  rejected {s['rejected']}  errors {s['errors']}",
        f"  feedback: sent {fb['sent']}  failed {fb['failed']}  not arriving {fb['skipped']}  dropped {fb['dropped']}",
    ]
    for p in s["phases"]:
        lines.append(
            f"  phase {p['name']:<22} {p['end'] - p['start']:6.1f}s  sent {p['sent']:>6}  ok {p['ok']:>6}  "
            f"rejected {p['rejected']:>6}  errors {p['errors']:>6}"
        )
    return "\n".join(lines)
