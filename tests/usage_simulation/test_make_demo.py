"""`make demo` end to end with a shortened scenario: the printed scoring table shows the drift detected."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack.processes import port_open

pytestmark = pytest.mark.integration


def test_demo_runs_end_to_end_and_detects_the_drift(tmp_path: Path) -> None:
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
        "--artifacts-dir",
        str(tmp_path / "artifacts"),
        "--reports-dir",
        str(tmp_path / "reports"),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env={"KEEP_RUNNING": "0", **_env()})
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Detection scoring: scenario demo" in out, out
    rows = {m.group(1).strip(): m.group(2) for m in re.finditer(r"^drift\s+(.+?)\s+\+\d+s\s+(YES|no)\b", out, re.M)}
    assert rows.get("dataset drift") == "YES", out
    assert rows.get("DataDriftDetected") == "YES", out
    assert "false alarms in clean phases: none" in out, out
    # URLs, report paths and the Evidently UI command are printed; the reports exist.
    assert re.search(r"prediction API\s+http://127\.0\.0\.1:\d+/predict", out)
    assert re.search(r"Prometheus\s+http://127\.0\.0\.1:\d+/alerts", out)
    assert "evidently ui --workspace" in out
    reports = sorted((tmp_path / "reports").rglob("*.html"))
    assert reports and any(str(r) in out for r in reports), out
    # Everything it started is stopped: no port it printed still answers.
    assert "stopped everything the demo started" in out
    for port in re.findall(r"http://127\.0\.0\.1:(\d+)", out):
        assert not port_open(int(port)), f"port {port} still open after the demo"


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
    stack = demo.start_stack(tmp_path, tmp_path / "artifacts", with_prometheus=False, default_ports=False)
    try:
        assert [p.name for p in stack.processes] == ["mongodb"]
        out = capsys.readouterr().out
        assert "evidently_service: not built yet" in out and "prediction_service: not built yet" in out
        args = demo.parse_args(["--workdir", str(tmp_path)])
        assert demo.simulate(args, stack) == (None, None)
    finally:
        stack.stop()
    assert not stack.processes[0].alive()
