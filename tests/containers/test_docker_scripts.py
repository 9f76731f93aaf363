"""The scripts under docker/: the images' healthcheck probe and the .env generator."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_support import ENV_EXAMPLE, REPO, run_compose

from local_stack.processes import ManagedProcess, free_port, http_ok

HEALTHCHECK = REPO / "docker" / "healthcheck.py"
MAKE_ENV = REPO / "docker" / "make_env.py"
SECRET_KEYS = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines() if line.endswith("=change-me")}


def probe(*args: str) -> subprocess.CompletedProcess:
    """Run the healthcheck exactly as a container does: `python healthcheck.py URL`."""
    return subprocess.run([sys.executable, str(HEALTHCHECK), *args], capture_output=True, text=True, timeout=30)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 -- the http.server API
        status = {"/health": 200, "/sick": 503, "/missing": 404}.get(self.path, 500)
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        """Keep test output quiet."""


@pytest.fixture
def server() -> Iterator[str]:
    """A real HTTP server on a free loopback port answering /health 200, /sick 503, /missing 404."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_healthcheck_passes_on_2xx(server: str):
    assert probe(f"{server}/health").returncode == 0


@pytest.mark.parametrize("path", ["/sick", "/missing"])
def test_healthcheck_fails_on_error_status(server: str, path: str):
    result = probe(f"{server}{path}")
    assert result.returncode == 1
    assert "unhealthy" in result.stderr


def test_healthcheck_fails_when_nothing_listens():
    result = probe(f"http://127.0.0.1:{free_port()}/health", "1")
    assert result.returncode == 1


def test_healthcheck_needs_a_url():
    assert probe().returncode == 2


def run_make_env(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MAKE_ENV), *args], capture_output=True, text=True, timeout=30)


def test_make_env_fills_every_secret_and_compose_accepts_it(tmp_path: Path):
    out = tmp_path / ".env"
    assert run_make_env("--out", str(out)).returncode == 0
    text = out.read_text()
    assert "=change-me" not in text
    assert out.stat().st_mode & 0o777 == 0o600
    secrets = {line.split("=", 1)[1] for line in text.splitlines() if line.split("=", 1)[0] in SECRET_KEYS}
    assert len(secrets) == len(SECRET_KEYS), "each secret is distinct"
    assert all(len(value) >= 32 for value in secrets)
    result = run_compose("config", "-q", env_file=out)
    assert result.returncode == 0, result.stderr


def test_make_env_never_overwrites_without_force(tmp_path: Path):
    out = tmp_path / ".env"
    out.write_text("MONITORING_TOKEN=mine\n")
    assert run_make_env("--out", str(out)).returncode == 1
    assert out.read_text() == "MONITORING_TOKEN=mine\n"
    assert run_make_env("--out", str(out), "--force").returncode == 0
    assert "MONITORING_TOKEN=mine" not in out.read_text()


@pytest.mark.integration
def test_evidently_ui_answers_the_compose_healthcheck(rendered: dict, tmp_path: Path):
    """Run the evidently_ui container's command locally (loopback port) and probe it as compose does."""
    service = rendered["services"]["evidently_ui"]
    command = list(service["command"])
    port = free_port()
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    command[command.index("--workspace") + 1] = str(tmp_path / "workspace")
    assert command[0] == "evidently"
    executable = str(Path(sys.executable).parent / "evidently")
    env = {"DO_NOT_TRACK": "1", "EVIDENTLY_SECRET": "test-secret"}
    proc = ManagedProcess("evidently-ui", [executable, *command[1:]], tmp_path / "ui.log", env=env).start()
    try:
        url = service["healthcheck"]["test"][-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        proc.wait_ready(lambda: http_ok(url), timeout=60)
        assert probe(url).returncode == 0
    finally:
        proc.stop()


ALERTMANAGER_PAYLOAD = {
    "receiver": "team-webhook",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DataDriftDetected", "severity": "warning", "model": "ride_duration"},
            "annotations": {"summary": "Dataset drift"},
            "startsAt": "2026-01-01T00:00:00Z",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "NoPredictionTraffic", "severity": "critical"},
            "annotations": {},
            "startsAt": "2026-01-01T00:00:00Z",
        },
    ],
}


@pytest.fixture
def alert_webhook(tmp_path: Path) -> Iterator[tuple[ManagedProcess, str]]:
    """The alert receiver as compose runs it (its own script, one process), on a free loopback port."""
    port = free_port()
    args = [sys.executable, str(REPO / "docker" / "alert_webhook.py"), "--host", "127.0.0.1", "--port", str(port)]
    proc = ManagedProcess("alert-webhook", args, tmp_path / "webhook.log").start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(lambda: http_ok(f"{url}/health"), timeout=20)
    yield proc, url
    proc.stop()


@pytest.mark.integration
def test_alert_webhook_logs_each_alert_as_a_json_line(alert_webhook):
    import json

    import requests

    proc, url = alert_webhook
    response = requests.post(f"{url}/alerts/warning", json=ALERTMANAGER_PAYLOAD, timeout=5)
    assert response.status_code == 200 and response.json() == {"received": 2}
    assert probe(f"{url}/health").returncode == 0

    def logged() -> list[dict]:
        lines = [json.loads(line) for line in proc.log_path.read_text().splitlines() if '"route"' in line]
        return lines if len(lines) == 2 else []

    from local_stack.processes import wait_until

    records = wait_until(logged, timeout=10, what="alert lines in the log")
    assert [r["alertname"] for r in records] == ["DataDriftDetected", "NoPredictionTraffic"]
    assert (
        records[0] | {"route": "warning", "severity": "warning", "model": "ride_duration", "status": "firing"}
        == records[0]
    )


@pytest.mark.integration
def test_alert_webhook_rejects_bad_bodies_with_4xx(alert_webhook):
    import requests

    _, url = alert_webhook
    assert requests.post(f"{url}/alerts/warning", data=b"not json", timeout=5).status_code == 400
    assert requests.post(f"{url}/alerts/warning", data=b"[1, 2]", timeout=5).status_code == 400
    assert requests.post(f"{url}/elsewhere", json={}, timeout=5).status_code == 404
    big = b"{" + b" " * (1024 * 1024 + 1) + b"}"
    assert requests.post(f"{url}/alerts/warning", data=big, timeout=5).status_code == 413
    assert requests.get(f"{url}/health", timeout=5).status_code == 200


def _image_env(dockerfile) -> dict[str, str]:
    """Return the final stage's ENV settings (KEY=value pairs, as the image sets them)."""
    env = {}
    for op, args in dockerfile.final_stage:
        if op == "ENV":
            env |= dict(pair.split("=", 1) for pair in args.split() if "=" in pair)
    return env


@pytest.mark.integration
def test_prefect_server_and_served_flow_answer_their_compose_healthchecks(
    rendered: dict, dockerfile_of, tmp_path: Path
):
    """Run the prefect_server and prefect_flows containers' commands locally and probe them as compose does."""
    services = rendered["services"]
    server_port, runner_port = free_port(), free_port()
    command = list(services["prefect_server"]["command"])
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(server_port)
    server_env = {
        **services["prefect_server"]["environment"],
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{server_port}/api",
    }
    server = ManagedProcess(
        "prefect-server",
        [str(Path(sys.executable).parent / command[0]), *command[1:]],
        tmp_path / "server.log",
        env=server_env,
    ).start()
    worker = None
    try:
        server_health = services["prefect_server"]["healthcheck"]["test"][-1].replace(":4200/", f":{server_port}/")
        server.wait_ready(lambda: http_ok(server_health), timeout=120)
        assert probe(server_health).returncode == 0

        image_env = _image_env(dockerfile_of("prefect_flows"))
        worker_env = {
            **{k: v for k, v in image_env.items() if k.startswith("PREFECT_RUNNER_")},
            **services["prefect_flows"]["environment"],
            "PREFECT_API_URL": f"http://127.0.0.1:{server_port}/api",
            "PREFECT_HOME": str(tmp_path / "prefect-worker"),
            "PREFECT_RUNNER_SERVER_PORT": str(runner_port),
            "BATCH_SCHEDULE_CRON": "0 0 1 1 *",  # no run may start during the test
        }
        assert worker_env["PREFECT_RUNNER_SERVER_ENABLE"] == "true"
        worker_command = services["prefect_flows"]["command"]
        worker = ManagedProcess(
            "prefect-flows", [sys.executable, *worker_command[1:]], tmp_path / "worker.log", env=worker_env, cwd=REPO
        ).start()
        runner_port_in_image = image_env["PREFECT_RUNNER_SERVER_PORT"]
        health = services["prefect_flows"]["healthcheck"]["test"][-1].replace(
            f":{runner_port_in_image}/", f":{runner_port}/"
        )
        worker.wait_ready(lambda: http_ok(health), timeout=120)
        assert probe(health).returncode == 0
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
