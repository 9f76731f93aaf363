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
