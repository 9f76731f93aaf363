"""The label-flood case of `python -m bench reliability`: /predict latency while many clients post /feedback.

A steady /predict client measures its latency alone, then beside `clients` threads polling /health as
fast as they can (the control: what any busy clients cost the same threads and cores), then beside
`clients` threads posting /feedback as fast as they can, each call `batch` labels for request ids that
were never served (the worst case for the old design, which waited on the request thread for such ids
to appear). The answer does not depend on whether an id exists, so the figure holds for real labels too.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import requests

from local_stack.reliability import ride_payloads


@dataclass
class FloodFigures:
    """/predict latency without and with the flood, and what the flood got."""

    clients: int
    batch: int
    seconds: float
    alone: dict[str, float] = field(default_factory=dict)  # p50 / p99 / max in ms, requests, failed
    control: dict[str, float] = field(default_factory=dict)  # beside the same clients polling /health
    flooded: dict[str, float] = field(default_factory=dict)  # beside the label flood
    feedback_calls: dict[str, int] = field(default_factory=dict)  # HTTP status -> calls
    feedback_calls_per_second: float = 0.0
    feedback_p50_ms: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _summary(latencies: list[float], failed: int) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {"requests": 0, "failed": failed}
    return {
        "requests": len(ordered),
        "failed": failed,
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def _predict_for(url: str, seconds: float, rps: float, prefix: str) -> tuple[list[float], int]:
    session = requests.Session()
    rides = ride_payloads(500, seed=11)
    latencies: list[float] = []
    failed = 0
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        ride, _ = rides[n % len(rides)]
        request_id = f"{prefix}-{n}"
        n += 1
        try:
            response = session.post(f"{url}/predict", json={**ride, "request_id": request_id}, timeout=30)
            ok = response.status_code == 200 and response.json()["request_id"] == request_id
        except requests.RequestException:
            ok = False
        if ok:
            latencies.append(time.monotonic() - started)
        else:
            failed += 1
        time.sleep(max(0.0, 1 / rps - (time.monotonic() - started)))
    return latencies, failed


def _under_flood(url: str, clients: int, seconds: float, rps: float, prefix: str, send) -> tuple[dict, Counter, list]:
    """Measure /predict while `clients` threads call `send(session, index, n)` in a loop; return the figures."""
    stop = threading.Event()
    statuses: Counter = Counter()
    latencies: list[float] = []
    lock = threading.Lock()

    def flood(index: int) -> None:
        session = requests.Session()
        n = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = str(send(session, index, n).status_code)
            except requests.RequestException as exc:
                status = type(exc).__name__
            n += 1
            with lock:
                statuses[status] += 1
                latencies.append(time.monotonic() - started)

    threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let the flood reach its pace
    calls_before, flood_started = sum(statuses.values()), time.monotonic()
    predicted, failed = _predict_for(url, seconds, rps, prefix)
    calls = sum(statuses.values()) - calls_before
    summary = _summary(predicted, failed)
    summary["flood_calls_per_second"] = round(calls / (time.monotonic() - flood_started), 1)
    stop.set()
    for thread in threads:
        thread.join(60)
    return summary, statuses, latencies


def run_label_flood(
    url: str, token: str, clients: int = 16, batch: int = 10, seconds: float = 20.0, rps: float = 20.0
) -> FloodFigures:
    """Measure /predict alone, beside `clients` clients polling /health (the control), then beside the label flood."""
    figures = FloodFigures(clients=clients, batch=batch, seconds=seconds)
    latencies, failed = _predict_for(url, seconds, rps, "alone")
    figures.alone = _summary(latencies, failed)
    # The control: the same number of busy clients on the cheapest endpoint, so the label figure can be
    # read against what any busy clients cost the same threads and cores.
    figures.control, _, _ = _under_flood(
        url, clients, seconds, rps, "control", lambda session, i, n: session.get(f"{url}/health", timeout=30)
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def post_labels(session: requests.Session, index: int, n: int) -> requests.Response:
        body = [{"request_id": f"ghost-{index}-{n}-{k}", "duration": 9.0} for k in range(batch)]
        return session.post(f"{url}/feedback", json=body, headers=headers, timeout=30)

    figures.flooded, statuses, feedback_latencies = _under_flood(url, clients, seconds, rps, "flooded", post_labels)
    figures.feedback_calls = dict(statuses)
    figures.feedback_calls_per_second = figures.flooded.pop("flood_calls_per_second")
    figures.feedback_p50_ms = round(statistics.median(feedback_latencies) * 1000, 1) if feedback_latencies else 0.0
    return figures


def format_flood(figures: FloodFigures) -> str:
    """Return the figures as a small text table."""
    rows = [
        ("case", f"{figures.clients} clients posting /feedback ({figures.batch} unknown ids per call)"),
        ("/predict alone: p50 / p99 / max ms", _triple(figures.alone)),
        (f"/predict beside {figures.clients} clients polling /health (control)", _triple(figures.control)),
        ("/predict during the label flood: p50 / p99 / max ms", _triple(figures.flooded)),
        ("/predict requests / failed: alone, control, flood", _counts(figures.alone, figures.control, figures.flooded)),
        ("/health calls per second during the control", f"{figures.control.get('flood_calls_per_second', 0):,.1f}"),
        ("/feedback calls per second during the flood", f"{figures.feedback_calls_per_second:,.1f}"),
        ("/feedback answers by status", ", ".join(f"{k}: {v:,}" for k, v in sorted(figures.feedback_calls.items()))),
        ("/feedback p50 ms", f"{figures.feedback_p50_ms:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _triple(summary: dict[str, float]) -> str:
    return " / ".join(f"{summary.get(k, float('nan')):.1f}" for k in ("p50_ms", "p99_ms", "max_ms"))


def _counts(*summaries: dict[str, float]) -> str:
    return ", ".join(f"{s['requests']:,.0f} / {s['failed']:.0f}" for s in summaries)
