"""A hostile-client load for the slow-client test and benchmark: idle and slow-header connections, kept up.

Idle connections are opened and never send a byte; slow-header connections send a request head one
byte every `byte_interval` seconds and never finish it. Whenever the server closes one, it is opened
again at once, as an attacker would, so the pressure stays constant for as long as the attack runs.
The attack runs in a child process (`python -m local_stack.slow_clients`) so that its own Python work
never delays the probes, which time /predict and /iterate one request at a time meanwhile.
"""

from __future__ import annotations

import json
import math
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from local_stack.sample_rows import sample_row

if TYPE_CHECKING:
    from local_stack.reliability import Stack

# A plausible head that never ends: the server must not wait for its last line forever.
SLOW_HEAD = b"POST /predict HTTP/1.1\r\nHost: victim\r\nContent-Type: application/json\r\nX-Padding: " + b"a" * 4000


@dataclass
class _Conn:
    sock: socket.socket
    slow: bool
    sent: int = 0


class _Attack:
    """Keep `idle` idle and `slow_header` slow-header connections open to `address` (runs in its own process)."""

    def __init__(self, address: tuple[str, int], idle: int, slow_header: int, byte_interval: float) -> None:
        self.address = address
        self.idle = idle
        self.slow_header = slow_header
        self.byte_interval = byte_interval
        self.reopened = 0  # connections the server closed (and we opened again)
        self.open_failures = 0
        self._selector = selectors.DefaultSelector()
        self._conns: list[_Conn] = []
        self._stop = False

    def open_all(self) -> None:
        for _ in range(self.idle):
            self._open(slow=False)
        for _ in range(self.slow_header):
            self._open(slow=True)

    def stop(self, *_: object) -> None:
        self._stop = True

    def _open(self, slow: bool) -> None:
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.connect(self.address)
        except OSError:
            # A full accept backlog is part of what the attack measures: try again on the next tick.
            self.open_failures += 1
            sock.close()
            return
        sock.setblocking(False)
        conn = _Conn(sock, slow)
        self._conns.append(conn)
        self._selector.register(sock, selectors.EVENT_READ, conn)

    def _close(self, conn: _Conn) -> None:
        self._selector.unregister(conn.sock)
        conn.sock.close()
        self._conns.remove(conn)
        self.reopened += 1

    def run(self) -> None:
        next_byte = time.monotonic()
        while not self._stop:
            for key, _ in self._selector.select(timeout=0.05):
                conn: _Conn = key.data
                try:
                    data = conn.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:  # closed by the server (or an error answer followed by a close)
                    self._close(conn)
            if time.monotonic() >= next_byte:
                next_byte += self.byte_interval
                for conn in [c for c in self._conns if c.slow]:
                    try:
                        at = conn.sent % len(SLOW_HEAD)
                        conn.sock.send(SLOW_HEAD[at : at + 1])
                        conn.sent += 1
                    except OSError:
                        self._close(conn)
            for _ in range(self.idle - sum(1 for c in self._conns if not c.slow)):
                self._open(slow=False)
            for _ in range(self.slow_header - sum(1 for c in self._conns if c.slow)):
                self._open(slow=True)


class SlowClients:
    """The attack on host:port, run in a child process so it never competes with the prober for the GIL."""

    def __init__(
        self, host: str, port: int, idle: int = 200, slow_header: int = 50, byte_interval: float = 0.5
    ) -> None:
        self.args = [host, str(port), str(idle), str(slow_header), str(byte_interval)]
        self.open_connections = 0  # all of them open at once, as the child reported when ready
        self.reopened = 0  # connections the server closed and the child opened again, known on exit
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> SlowClients:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "local_stack.slow_clients", *self.args],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        ready = json.loads(self._proc.stdout.readline() or "{}")
        self.open_connections = ready.get("open", 0)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        out, _ = self._proc.communicate(timeout=30)
        self.reopened = json.loads(out.strip().splitlines()[-1]).get("reopened", 0) if out.strip() else 0


def _main(argv: list[str]) -> int:
    """Run one attack until SIGTERM: `python -m local_stack.slow_clients HOST PORT IDLE SLOW_HEADER INTERVAL`."""
    host, port, idle, slow_header, interval = argv
    attack = _Attack((host, int(port)), int(idle), int(slow_header), float(interval))
    signal.signal(signal.SIGTERM, attack.stop)
    attack.open_all()
    print(json.dumps({"open": len(attack._conns), "open_failures": attack.open_failures}), flush=True)
    attack.run()
    print(json.dumps({"reopened": attack.reopened, "open_failures": attack.open_failures}), flush=True)
    return 0


@dataclass
class Probe:
    """Latencies (seconds) of requests sent one after another, and the ones that failed or timed out."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        """Return the nearest-rank q-th percentile (0-100) of all requests' latencies, a failure counting as +inf."""
        values = sorted(self.latencies + [float("inf")] * len(self.failures))
        if not values:
            return float("nan")
        return values[max(0, math.ceil(q / 100 * len(values)) - 1)]

    def summary(self) -> dict[str, float | int]:
        """Return count, failures, p50, p99 and max in milliseconds (inf when a request failed)."""
        worst = max(self.latencies, default=float("nan")) if not self.failures else float("inf")
        return {
            "requests": len(self.latencies) + len(self.failures),
            "failed": len(self.failures),
            "p50_ms": self.percentile(50) * 1000,
            "p99_ms": self.percentile(99) * 1000,
            "max_ms": worst * 1000,
        }


def probe(call: Callable[[], None], duration: float, interval: float = 0.02) -> Probe:
    """Call `call()` (one request; it raises on a wrong answer) back to back for `duration` s, timing each."""
    result = Probe()
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - every kind of failure is an outcome to count
            result.failures.append(f"{type(exc).__name__}: {str(exc)[:160]}")
        else:
            result.latencies.append(time.perf_counter() - start)
        time.sleep(interval)
    return result


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _counter(stack: Stack, name: str, label: str) -> float:
    """Sum the prediction service's samples of counter `name` whose labels contain `label`."""
    lines = stack.metric_lines(stack.prediction_url, name)
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if label in line)


def predict_once(url: str, timeout: float) -> None:
    """POST one ride on a new connection (behind the attackers in the accept queue); raise unless it is served."""
    response = requests.post(f"{url}/predict", json=sample_row(), timeout=timeout, headers={"Connection": "close"})
    if response.status_code != 200 or "prediction" not in response.json():
        raise AssertionError(f"{response.status_code} {response.text[:160]}")


def iterate_once(url: str, token: str, request_id: str, timeout: float) -> None:
    """POST one row to the metrics service's /iterate on a new connection; raise unless it is accepted."""
    row = {
        **sample_row(),
        "request_id": request_id,
        "timestamp": "2021-01-05T08:31:00Z",
        "model_version": "v",
        "prediction": 9.5,
    }
    response = requests.post(
        f"{url}/iterate/ride_duration",
        json=[row],
        timeout=timeout,
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
    )
    if response.status_code != 200 or response.json().get("accepted") != 1:
        raise AssertionError(f"{response.status_code} {response.text[:160]}")


def slow_client_figures(
    stack: Stack,
    idle: int = 200,
    slow_header: int = 50,
    seconds: float = 20.0,
    baseline_seconds: float = 10.0,
    timeout: float = 10.0,
) -> dict[str, object]:
    """Probe /predict and the metrics service's /iterate without, then during, an attack on both services.

    Each service gets `idle` idle and `slow_header` slow-header connections, reopened whenever closed;
    /predict is probed for `seconds`, then /iterate for half as long (the forwarder posts meanwhile).
    Returns the probes' summaries and the rows the prediction service's forwarder dropped meanwhile.
    """
    counter = iter(range(10**9))

    def iterate() -> None:
        iterate_once(stack.metrics_url, stack.token, f"slow-probe-{next(counter)}", timeout)

    def both(duration: float) -> tuple[Probe, Probe]:
        # One after the other: two probers in one process would time each other's GIL waits.
        main = probe(lambda: predict_once(stack.prediction_url, timeout), duration)
        return main, probe(iterate, duration / 2)

    baseline, baseline_iterate = both(baseline_seconds)
    stack.wait_drained()
    dropped_before = _counter(stack, "prediction_records_dropped_total", 'queue="forward"')
    with (
        SlowClients("127.0.0.1", _port(stack.prediction_url), idle, slow_header) as on_prediction,
        SlowClients("127.0.0.1", _port(stack.metrics_url), idle, slow_header) as on_metrics,
    ):
        attacked, attacked_iterate = both(seconds)
    closed_by_server = on_prediction.reopened + on_metrics.reopened
    stack.wait_drained(timeout=120)
    return {
        "idle": idle,
        "slow_header": slow_header,
        "predict_baseline": baseline.summary(),
        "predict_attacked": attacked.summary(),
        "iterate_baseline": baseline_iterate.summary(),
        "iterate_attacked": attacked_iterate.summary(),
        "attack_connections_closed_by_server": closed_by_server,
        "forwarded_rows_dropped": _counter(stack, "prediction_records_dropped_total", 'queue="forward"')
        - dropped_before,
    }


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


def proxy_figures(
    stack: Stack, proxy_url: str, idle: int = 200, slow_header: int = 50, seconds: float = 20.0, timeout: float = 10.0
) -> dict[str, object]:
    """Probe /predict through a proxy: without an attack, with the attack through the proxy, and on gunicorn's port."""

    def call() -> None:
        predict_once(proxy_url, timeout)

    baseline = probe(call, seconds / 2)
    with SlowClients("127.0.0.1", _port(proxy_url), idle, slow_header):
        through = probe(call, seconds)
    with SlowClients("127.0.0.1", _port(stack.prediction_url), idle, slow_header):
        direct = probe(call, seconds / 2)
    return {
        "predict_baseline": baseline.summary(),
        "attack_through_proxy": through.summary(),
        "attack_on_gunicorn": direct.summary(),
    }
