"""`make demo` end to end with a shortened scenario, in a terminal as a person runs it: the printed scoring table
shows the drift detected, every printed link answers while the stack stays up, and Ctrl-C stops everything.

One demo run serves every check (each run trains, prepares and serves both examples: minutes of the suite).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack.processes import port_open

pytestmark = pytest.mark.integration


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("MONITORING_TOKEN", "DEMO_DURATION", "KEEP_RUNNING")}


def test_without_prometheus_and_not_root_the_demo_explains_how_to_install(monkeypatch, capsys) -> None:
    from local_stack import demo

    monkeypatch.setattr(demo, "prometheus_binary", lambda name="prometheus": None)
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)
    assert demo.ensure_prometheus() is False
    assert "apt-get install -y --no-install-recommends prometheus" in capsys.readouterr().out


def test_parts_not_built_yet_are_reported_and_skipped(monkeypatch, tmp_path: Path, capsys) -> None:
    from local_stack import demo

    monkeypatch.setattr(demo, "built", lambda module: False)
    stack = demo.start_stack(tmp_path, tmp_path / "models", with_prometheus=False, default_ports=False)
    try:
        assert [p.name for p in stack.processes] == ["mongodb"]
        out = capsys.readouterr().out
        assert "evidently_service: not built yet" in out and "prediction_service: not built yet" in out
        args = demo.parse_args(["--workdir", str(tmp_path)])
        assert demo.simulate(args, stack) == (None, None)
    finally:
        stack.stop()
    assert not stack.processes[0].alive()


def test_demo_detects_the_drift_and_in_a_terminal_stays_up_with_live_links_until_ctrl_c(tmp_path: Path) -> None:
    """The scoring shows the drift; in a terminal the stack stays up: every link answers, Ctrl-C closes every port."""
    import os
    import pty
    import secrets
    import signal

    import requests

    tag = secrets.token_hex(8)  # inherited by everything the demo starts, however it daemonises
    primary, secondary = pty.openpty()  # stdin and stdout are a terminal, as when a person runs `make demo`
    args = [
        sys.executable,
        "-m",
        "local_stack.demo",
        "--duration",
        "40",
        "--free-ports",
        "--train-rows",
        "8000",
        "--workdir",
        str(tmp_path / "demo"),
        "--models-dir",
        str(tmp_path / "models"),
        "--reports-dir",
        str(tmp_path / "reports"),
    ]
    env = {**_env(), "I26_DEMO_TEST_TAG": tag}
    demo = subprocess.Popen(args, stdin=secondary, stdout=secondary, stderr=subprocess.STDOUT, env=env)
    os.close(secondary)
    try:
        out = _read_until(primary, "press Ctrl-C to stop", demo, timeout=600)
        assert "Detection scoring: scenario demo" in out, out
        rows = {m.group(1).strip(): m.group(2) for m in re.finditer(r"^drift\s+(.+?)\s+\+\d+s\s+(YES|no)\b", out, re.M)}
        assert rows.get("dataset drift") == "YES", out
        assert rows.get("DataDriftDetected") == "YES", out
        assert "false alarms in clean phases: none" in out, out
        # Where each component runs, how to authenticate, progress of the batch step; the reports exist.
        assert re.search(r"\[demo\] prediction service at http://127\.0\.0\.1:\d+", out)
        assert re.search(r"\[demo\] /feedback needs the token: export MONITORING_TOKEN=\$\(cat \S+\)", out)
        assert "[demo] batch flow: finished in" in out
        assert sorted((tmp_path / "reports").rglob("*.html")), out
        links = dict(
            re.findall(
                r"^  (reports index|newest drift report|Evidently UI|Prometheus alerts|graphs: [A-Za-z ]+?)\s+(http://\S+)",
                out,
                re.M,
            )
        )
        assert {"reports index", "newest drift report", "Evidently UI", "Prometheus alerts"} <= set(links), out
        graphs = {name: url for name, url in links.items() if name.startswith("graphs: ")}
        assert set(graphs) == {
            f"graphs: {t}" for t in ("Data drift", "Model quality", "Data quality", "Service health")
        }
        for name, url in links.items():
            assert requests.get(url, timeout=10).status_code == 200, (name, url)
        assert "Data drift" in requests.get(links["newest drift report"], timeout=10).text
        ui = links["Evidently UI"].rstrip("/")
        assert sorted(p["name"] for p in requests.get(f"{ui}/api/projects", timeout=10).json()) == [
            "health_insurance",
            "ride_duration",
        ]  # one Evidently UI project per model
        prometheus = re.search(r"Prometheus at (http://\S+)", out).group(1)
        _graph_queries_answer(prometheus, graphs, out)
        demo.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert demo.wait(timeout=60) == 0
        out += _read_until(primary, "stopped everything the demo started", demo, timeout=5)
    finally:
        if demo.poll() is None:  # a failed check: Ctrl-C first, so the demo stops what it started (no orphans)
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
        os.close(primary)
    ports = set(re.findall(r"(?:http|mongodb)://127\.0\.0\.1:(\d+)", out))
    assert len(ports) == 7, out  # MongoDB, two prediction services, the metrics service, Prometheus, reports, UI
    for port in ports:
        assert not port_open(int(port)), f"port {port} still open after Ctrl-C"
    # Seen: nx-27017 (re-parented to init) kept running after Ctrl-C in 3 of 4 runs.
    assert _survivors(tag) == [], out


def _survivors(tag: str) -> list[str]:
    """Command lines of live processes whose environment carries the test's tag (the demo's descendants)."""
    needle = f"I26_DEMO_TEST_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            tagged = needle in (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tagged and state != "Z":
            found.append(f"{entry.name}: {command}")
    return found


def _read_until(fd: int, marker: str, proc: subprocess.Popen, timeout: float) -> str:
    """Read a pseudo-terminal's output until `marker` appears (or the process ends, or `timeout`)."""
    import os
    import select
    import time

    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while marker.encode() not in b"".join(chunks) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the other side closed: the process ended
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def _graph_queries_answer(prometheus: str, graphs: dict[str, str], out: str) -> None:
    """Every graph link's query is valid PromQL, and returns data unless the service does not export it yet."""
    from urllib.parse import parse_qs, urlsplit

    import requests

    metrics = requests.get(re.search(r"metrics service\s+(http://\S+)", out).group(1), timeout=10).text
    for name, url in graphs.items():
        queries = [v[0] for k, v in parse_qs(urlsplit(url).query).items() if k.endswith(".expr")]
        assert queries, name
        for query in queries:
            answer = requests.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=10).json()
            assert answer["status"] == "success", (name, query, answer)
            metric = re.match(r"[a-z_:]+", query).group(0)
            # evidently_feature_drift_threshold arrives with the metrics service's calibrated thresholds.
            exported = ":" in metric or f"\n{metric}{{" in metrics
            assert answer["data"]["result"] or not exported, (name, query)
