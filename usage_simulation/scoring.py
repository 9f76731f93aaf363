"""Detection scoring: read Prometheus after a run and tell, per injected fault, whether and when it was seen.

A signal is "on" at a moment when its PromQL returns any sample then (as an alert rule's
expression does). For each phase with expected signals we report the first moment after the
phase's onset the signal was on, as a delay in seconds and in rows sent since the onset;
any watched signal on during a clean phase is a false alarm.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field

import requests

from usage_simulation.runner import RunResult
from usage_simulation.scenario import Scenario, Signal

MAX_POINTS = 10_000  # Prometheus refuses ranges over 11,000 points per series
# Labels every alert of the stack carries: left out when listing active alerts.
_COMMON_LABELS = {"alertname", "severity", "model", "job", "instance", "stack"}


_RANGE = re.compile(r"\[(\d+)([smh])\]")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def lookback_seconds(promql: str) -> float:
    """Return the longest range selector of a PromQL expression in seconds (0 when it has none)."""
    return max((int(n) * _UNIT_SECONDS[u] for n, u in _RANGE.findall(promql)), default=0)


class PrometheusClient:
    """The three read endpoints the scorer uses."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _get(self, path: str, params: dict | None = None) -> dict:
        response = self._session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 200 or body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} {params or ''}: {response.status_code} {body.get('error', '')}")
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        """Run an instant query (`/api/v1/query`) and return the result vector."""
        params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
        return self._get("/api/v1/query", params)["result"]

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict]:
        """Run a range query (`/api/v1/query_range`) and return the result matrix."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return self._get("/api/v1/query_range", params)["result"]

    def alerts(self) -> list[dict]:
        """Return the alerts active now (`/api/v1/alerts`), pending or firing."""
        return self._get("/api/v1/alerts")["alerts"]

    def alert_for_seconds(self) -> dict[str, float]:
        """Return each alerting rule's `for:` in seconds, by alert name (the longest when a name repeats)."""
        groups = self._get("/api/v1/rules", {"type": "alert"})["groups"]
        durations: dict[str, float] = {}
        for rule in (r for g in groups for r in g.get("rules", [])):
            durations[rule["name"]] = max(durations.get(rule["name"], 0.0), float(rule.get("duration") or 0))
        return durations

    def first_on(self, promql: str, start: float, end: float) -> float | None:
        """Return the first moment in [start, end] at which `promql` returned a sample, or None."""
        if end <= start:
            return None
        step = max(1.0, math.ceil((end - start) / MAX_POINTS))
        series = self.query_range(promql, start, end, step)
        times = [float(point[0]) for s in series for point in s.get("values", [])]
        return min(times) if times else None


@dataclass
class SignalScore:
    """One expected signal of one faulty phase."""

    phase: str
    signal: str
    promql: str
    onset: float
    onset_offset_seconds: float
    fired: bool
    fired_at: float | None = None
    delay_seconds: float | None = None
    delay_rows: int | None = None
    # A firing alert needs its condition to hold for the rule's `for:` first. When the onset plus that `for:`
    # lies beyond the end of scoring, the run could not have seen it fire: out of reach, not a miss.
    alert_for_seconds: float | None = None
    observed_seconds: float | None = None
    out_of_reach: bool = False


@dataclass
class FalseAlarm:
    """A watched signal that was on during a clean phase."""

    phase: str
    signal: str
    promql: str
    at: float
    offset_seconds: float


@dataclass
class Scorecard:
    """The scoring of one run."""

    scenario: str
    prometheus_url: str
    signals: list[SignalScore] = field(default_factory=list)
    false_alarms: list[FalseAlarm] = field(default_factory=list)
    active_alerts: list[dict] = field(default_factory=list)

    @property
    def detected_all(self) -> bool:
        """Whether every expected signal the run could see fired (out-of-reach alerts aside)."""
        return all(s.fired or s.out_of_reach for s in self.signals)

    def to_dict(self) -> dict:
        """Return the scorecard as plain data (for --json)."""
        return {**asdict(self), "detected_all": self.detected_all, "false_alarm_count": len(self.false_alarms)}


def _expected(scenario: Scenario, run: RunResult) -> list[tuple[str, float, Signal]]:
    return [(w.name, w.start, signal) for w in run.phases for signal in scenario.phases[w.index].expected_signals]


def wait_for_signals(
    client: PrometheusClient, scenario: Scenario, run: RunResult, settle_seconds: float, poll_seconds: float = 1.0
) -> None:
    """Wait up to `settle_seconds` after the run for every expected signal to come on (evaluations lag)."""
    deadline = time.monotonic() + settle_seconds
    waiting = _expected(scenario, run)
    while waiting and time.monotonic() < deadline:
        waiting = [(p, onset, s) for p, onset, s in waiting if client.first_on(s.promql, onset, time.time()) is None]
        if waiting:
            time.sleep(poll_seconds)


def score(
    client: PrometheusClient, scenario: Scenario, run: RunResult, until: float | None = None, model: str | None = None
) -> Scorecard:
    """Score a finished run against what Prometheus recorded up to `until` (default now); list `model`'s alerts."""
    until = until or time.time()
    card = Scorecard(scenario=scenario.name, prometheus_url=client.url)
    try:
        alert_for = client.alert_for_seconds()
    except (requests.RequestException, KeyError, ValueError):  # no rules API: every signal is scored as before
        alert_for = {}
    for phase, onset, signal in _expected(scenario, run):
        fired_at = client.first_on(signal.promql, onset, until)
        entry = SignalScore(
            phase=phase,
            signal=signal.name,
            promql=signal.promql,
            onset=onset,
            onset_offset_seconds=round(onset - run.started_at, 1),
            fired=fired_at is not None,
        )
        if fired_at is not None:
            entry.fired_at = fired_at
            entry.delay_seconds = round(max(fired_at - onset, 0.0), 1)
            entry.delay_rows = run.rows_between(onset, fired_at)
        elif signal.alert and 'alertstate="firing"' in signal.promql and signal.alert in alert_for:
            entry.alert_for_seconds = alert_for[signal.alert]
            entry.observed_seconds = round(until - onset, 1)
            entry.out_of_reach = onset + alert_for[signal.alert] > until
        card.signals.append(entry)
    watched = scenario.signals_to_watch()
    for window in run.phases:
        if not window.clean:
            continue
        for signal in watched:
            # A range-vector signal at time t looks back over [t - range, t]: before the run has lasted that
            # long it would judge the silence before the first request, not the clean phase.
            start = max(window.start, run.started_at + lookback_seconds(signal.promql))
            if start >= window.end:
                continue
            at = client.first_on(signal.promql, start, window.end)
            if at is not None:
                card.false_alarms.append(
                    FalseAlarm(window.name, signal.name, signal.promql, at, round(at - run.started_at, 1))
                )
    card.active_alerts = active_alerts(client.alerts(), model)
    return card


def active_alerts(alerts: list[dict], model: str | None = None) -> list[dict]:
    """Return the active alerts worth listing after a run of `model`: its own and the stack's (no `model` label).

    In a stack monitoring several models another model's alerts are not this run's news (and, without their
    `model` label, two models' `DataDriftDetected` would read as one listed twice).
    """
    return [
        {
            "alertname": a["labels"].get("alertname", "?"),
            "state": a.get("state", "?"),
            "labels": {k: v for k, v in a["labels"].items() if k not in _COMMON_LABELS},
        }
        for a in alerts
        # The Watchdog fires always, by design (it proves the alert pipeline): not news for a scenario.
        if a["labels"].get("alertname") != "Watchdog" and (model is None or a["labels"].get("model", model) == model)
    ]


def _duration(seconds: float | None) -> str:
    seconds = seconds or 0.0
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def format_scorecard(card: Scorecard) -> str:
    """Return the scoring table printed after a run."""
    header = ("fault (phase)", "signal", "onset", "fired", "delay", "rows")
    rows = [
        (
            s.phase,
            s.signal,
            f"+{s.onset_offset_seconds:.0f}s",
            "YES" if s.fired else ("n/a" if s.out_of_reach else "no"),
            f"{s.delay_seconds:.0f}s" if s.fired else "-",
            str(s.delay_rows) if s.fired else "-",
        )
        for s in card.signals
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [
        f"Detection scoring: scenario {card.scenario} (Prometheus {card.prometheus_url})",
        line.format(*header),
        line.format(*("-" * w for w in widths)),
    ]
    out += [line.format(*r) for r in rows] or ["(no injected faults in this scenario)"]
    detected = sum(s.fired for s in card.signals)
    reachable = [s for s in card.signals if not s.out_of_reach]
    out.append(f"detected {detected}/{len(reachable)} expected signals")
    for s in card.signals:
        if s.out_of_reach:
            out.append(
                f"  out of reach: {s.signal} needs its condition for `for: {_duration(s.alert_for_seconds)}` "
                f"after the onset; this run watched {s.observed_seconds:.0f}s of it (a longer --duration lets it fire)"
            )
    if card.false_alarms:
        out.append(f"FALSE ALARMS in clean phases: {len(card.false_alarms)}")
        out += [f"  {f.phase}: {f.signal} on at +{f.offset_seconds:.0f}s" for f in card.false_alarms]
    else:
        out.append("false alarms in clean phases: none")
    alerts = (
        ", ".join(
            a["alertname"] + "".join(f" {k}={v}" for k, v in sorted(a.get("labels", {}).items())) + f" ({a['state']})"
            for a in card.active_alerts
        )
        or "none"
    )
    out.append(f"alerts active now: {alerts}")
    return "\n".join(out)
