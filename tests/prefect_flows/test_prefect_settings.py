"""Prefect's own settings in a fresh flow process: the raised start-up timeout and analytics off, client and server.

Prefect reads its settings once, when first imported; prefect_flows/__init__.py sets its defaults before
that. These tests run fresh interpreters with none of the variables set, as a user's shell would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefect_flows import PREFECT_DEFAULTS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Imports the flow module the way `python -m prefect_flows.batch_monitoring` does (the package first), then
# reports what Prefect read; with "server", starts the temporary API server and asks it for its settings.
_PROBE = """
import json, runpy, sys
runpy.run_module("prefect_flows.batch_monitoring", run_name="probe")
from prefect._internal.analytics import is_telemetry_enabled
from prefect.settings import get_current_settings
settings = get_current_settings()
found = {
    "startup_timeout": settings.server.ephemeral.startup_timeout_seconds,
    "analytics": settings.server.analytics_enabled,
    "sdk_telemetry": is_telemetry_enabled(),
}
if sys.argv[1:] == ["server"]:
    import httpx
    from prefect.server.api.server import SubprocessASGIServer
    server = SubprocessASGIServer()
    server.start()
    try:
        answer = httpx.get(f"{server.api_url}/admin/settings", timeout=30).json()
        found["server_analytics"] = answer["server"]["analytics_enabled"]
    finally:
        server.stop()
print(json.dumps(found))
"""


def _clean_env(prefect_env: dict[str, str], **extra: str) -> dict[str, str]:
    """Return this environment without the variables prefect_flows sets (the test process has them from its import)."""
    env = {k: v for k, v in os.environ.items() if k not in PREFECT_DEFAULTS and not k.startswith("PREFECT_")}
    return {**env, **prefect_env, **extra}


def _probe(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_flow_command_runs_prefect_with_the_raised_timeout_and_analytics_off(prefect_env, tmp_path):
    """`python -m prefect_flows.batch_monitoring` in a clean environment: Prefect itself reports the values."""
    (tmp_path / "models").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "prefect_flows.batch_monitoring", "--start", "2026-01-05T10:00:00Z"],
        cwd=REPO,
        env=_clean_env(prefect_env, MODELS_DIR=str(tmp_path / "models"), REPORTS_DIR=str(tmp_path / "reports")),
        capture_output=True,
        text=True,
        timeout=400,
    )
    # The line is read back from Prefect's settings object in that process, before the flow starts its server.
    assert "prefect: API a temporary server (start-up timeout 300 s); server analytics off" in done.stdout
    # The temporary server started (within the raised timeout) and the run failed on the empty models folder.
    assert done.returncode != 0 and "no model folder" in done.stderr, done.stderr[-3000:]
    assert "Timed out while attempting to connect" not in done.stderr


def test_the_temporary_server_and_the_sdk_run_with_analytics_off(prefect_env):
    found = _probe(_clean_env(prefect_env), "server")
    assert found == {"startup_timeout": 300, "analytics": False, "sdk_telemetry": False, "server_analytics": False}


def test_a_users_own_settings_win(prefect_env):
    env = _clean_env(prefect_env, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="45")
    assert _probe(env)["startup_timeout"] == 45
    # An empty value counts as unset, as for every setting of the stack.
    assert (
        _probe(_clean_env(prefect_env, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=""))["startup_timeout"] == 300
    )
