"""What `make demo` tells a newcomer, and how it stops: moved ports, the token, the bind address, the stop."""

from __future__ import annotations

import os
import secrets
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from local_stack import demo
from local_stack.processes import RUN_MARKER, ManagedProcess


class _Started:
    """What the fake starters were asked to start."""

    def __init__(self) -> None:
        self.calls: dict[str, dict] = {}


@pytest.fixture
def fake_starters(monkeypatch, tmp_path: Path) -> _Started:
    """Every contract port taken; starters that record their arguments instead of starting processes."""
    started = _Started()
    monkeypatch.setattr(demo, "port_open", lambda port, host="127.0.0.1": True)
    ports = iter(range(41001, 41100))
    monkeypatch.setattr(demo, "free_port", lambda: next(ports))

    def proc(name: str) -> ManagedProcess:
        return ManagedProcess(name, [], tmp_path / f"{name}.log")  # never started: stop() skips it

    def mongo(logs, port=None, data_dir=None, bind="127.0.0.1"):
        started.calls["mongodb"] = {"port": port, "bind": bind}
        return proc("mongodb"), f"mongodb://127.0.0.1:{port}"

    def service(module, logs, env, port=None, **_):
        started.calls[module] = {"port": port, "env": env}
        return proc(module), f"http://127.0.0.1:{port}"

    def prometheus(config, folder, port=None, bind="127.0.0.1"):
        started.calls["prometheus"] = {"port": port, "bind": bind}
        return proc("prometheus"), f"http://127.0.0.1:{port}"

    monkeypatch.setattr(demo, "start_mongo", mongo)
    monkeypatch.setattr(demo, "start_service", service)
    monkeypatch.setattr(demo, "start_prometheus", prometheus)
    monkeypatch.setattr(demo, "ensure_prometheus", lambda: True)
    monkeypatch.delenv("MONITORING_TOKEN", raising=False)
    monkeypatch.delenv("DEMO_BIND_ADDRESS", raising=False)
    return started


def test_every_component_off_its_contract_port_says_so_in_its_line(fake_starters, tmp_path: Path, capsys) -> None:
    """Seen: 9696 and 9090 taken moved silently; the README's client then got "connection refused"."""
    stack = demo.start_stack(tmp_path, tmp_path / "artifacts")
    lines = capsys.readouterr().out.splitlines()
    for default, start in [(27017, "MongoDB"), (8085, "metrics service"), (9696, "prediction service")]:
        (line,) = [x for x in lines if x.startswith(f"[demo] {start}")]
        assert f"({default} was taken)" in line, line
    (line,) = [x for x in lines if x.startswith("[demo] Prometheus at")]
    assert "(9090 was taken)" in line, line
    (line,) = [x for x in lines if x.startswith("[demo] prediction service at")]
    assert f"PREDICTION_URL={stack.urls['prediction_service']}" in line


def test_the_demo_says_how_to_authenticate_and_keeps_the_token_in_a_private_file(
    fake_starters, tmp_path: Path, capsys
) -> None:
    """Seen: /feedback answered 401, the generated token was printed nowhere."""
    stack = demo.start_stack(tmp_path, tmp_path / "artifacts", default_ports=False)
    out = capsys.readouterr().out
    token_file = tmp_path / demo.TOKEN_FILE
    assert token_file.read_text().strip() == stack.token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert f"export MONITORING_TOKEN=$(cat {token_file})" in out
    assert "Authorization: Bearer $MONITORING_TOKEN" in out
    assert stack.token not in out  # the file, not the secret, goes to the terminal and to CI logs


def test_the_demo_listens_on_loopback_unless_told_otherwise(fake_starters, tmp_path: Path, monkeypatch) -> None:
    """Seen: the services started by the local demo listened on 0.0.0.0 (their container default)."""
    demo.start_stack(tmp_path, tmp_path / "artifacts", default_ports=False)
    calls = fake_starters.calls
    assert calls["mongodb"]["bind"] == calls["prometheus"]["bind"] == "127.0.0.1"
    assert calls["prediction_service"]["env"]["HOST"] == calls["evidently_service"]["env"]["HOST"] == "127.0.0.1"
    monkeypatch.setenv("DEMO_BIND_ADDRESS", "0.0.0.0")
    demo.start_stack(tmp_path, tmp_path / "artifacts", default_ports=False)
    assert calls["prediction_service"]["env"]["HOST"] == calls["prometheus"]["bind"] == "0.0.0.0"
    assert demo.parse_args([]).bind == "0.0.0.0"


def test_a_model_folder_of_ones_own_is_served_scraped_and_sent_traffic(
    fake_starters, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Seen: README says `make demo` monitors "any other prepared folder under models/"; the demo served only the two
    examples, so an own folder got no prediction service, no traffic and no metrics."""
    models = tmp_path / "models"
    for name in ("ride_duration", "health_insurance", "churn"):
        (models / name).mkdir(parents=True)
        (models / name / "model.yaml").write_text(f"name: {name}\n")
    served = {e.name: e for e in demo.served_models(models)}
    assert list(served) == ["ride_duration", "health_insurance", "churn"]
    assert served["churn"].scenario == "baseline" and served["churn"].port == 9698
    stack = demo.start_stack(tmp_path, models, default_ports=False)
    assert "prediction_service:churn" in stack.urls
    assert stack.urls["prediction_service:churn"].removeprefix("http://") in stack.prediction_targets
    (models / "churn" / "scenarios").mkdir()
    (models / "churn" / "scenarios" / "demo.yaml").write_text("name: demo\n")
    assert demo.served_models(models)[-1].scenario == "demo"  # its own demo scenario when it has one
    # The closing list gives its API and its dashboards' graph pages too.
    stack.urls["prometheus"] = "http://127.0.0.1:9"
    monkeypatch.setattr(demo, "prometheus_ui", lambda url: url)
    args = demo.parse_args(["--models-dir", str(models), "--workdir", str(tmp_path), "--reports-dir", str(tmp_path)])
    demo.print_where_to_look(stack, args, [], None, time.time())
    out = capsys.readouterr().out
    assert "churn API" in out and "churn: Model quality" in out and "model%3D%22churn%22" in out


def test_after_a_run_that_stopped_by_itself_the_closing_list_says_so(tmp_path: Path, capsys) -> None:
    """Seen: with KEEP_RUNNING=0 the closing lines listed the links of a stack that had already stopped."""
    stack = demo.Stack(workdir=tmp_path, token="t", urls={"prediction_service": "http://127.0.0.1:9696"})
    args = demo.parse_args(["--workdir", str(tmp_path), "--reports-dir", str(tmp_path / "reports")])
    stack.stop()
    demo.print_where_to_look(stack, args, [], None, since=0)
    out = capsys.readouterr().out
    assert "the stack has stopped" in out
    assert "http://" not in out


def test_the_batch_step_says_it_is_still_running(tmp_path: Path, capsys) -> None:
    """Seen: the batch step printed nothing for 30-76 s."""
    args = [sys.executable, "-c", "import time; time.sleep(0.7); print('ok')"]
    code, out = demo._run_in_own_group(args, dict(os.environ), tmp_path / "batch.log", progress=0.2)
    printed = capsys.readouterr().out
    assert (code, out.strip()) == (0, "ok")
    assert "[demo] batch flow: still running after" in printed and "[demo] batch flow: finished in" in printed


# A process that ignores SIGTERM and leaves behind a daemon in a session of its own (double fork + setsid),
# as nx-27017 -d and a gunicorn master on a loaded machine were seen to do.
_STUBBORN = textwrap.dedent(
    """
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            open(sys.argv[1], "w").write(str(os.getpid()))
            time.sleep(600)
        os._exit(0)
    time.sleep(600)
    """
)


def _tagged(tag: str) -> list[int]:
    """PIDs (zombies aside) whose environment carries the test's own tag."""
    found = []
    needle = f"I26_TEST_TAG={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            tagged = needle in (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if tagged and state != "Z":
            found.append(int(entry.name))
    return found


def test_stop_leaves_no_process_even_one_that_ignores_sigterm_and_daemonises(tmp_path: Path) -> None:
    tag, marker = secrets.token_hex(6), f"test-{secrets.token_hex(6)}"
    pid_file = tmp_path / "daemon.pid"
    env = {"I26_TEST_TAG": tag, RUN_MARKER: marker}
    proc = ManagedProcess("stubborn", [sys.executable, "-c", _STUBBORN, str(pid_file)], tmp_path / "s.log", env=env)
    proc.start()
    try:
        deadline = time.monotonic() + 20
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_tagged(tag)) == 2  # the stubborn leader and its daemon
        stack = demo.Stack(workdir=tmp_path, token="t", processes=[proc], marker=marker)
        began = time.monotonic()
        assert stack.stop(timeout=1.0) == []
        assert time.monotonic() - began < 10  # bounded: SIGKILL after the wait, not forever
        assert _tagged(tag) == []
    finally:
        for pid in _tagged(tag):
            os.kill(pid, 9)
        if proc.popen is not None and proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()


def test_every_variable_the_demo_reads_is_in_the_contract() -> None:
    import re

    root = Path(__file__).resolve().parents[2]
    source = (root / "local_stack" / "demo.py").read_text()
    read = set(re.findall(r"os\.environ(?:\.get\(|\[)\"([A-Z_]+)\"", source)) - {"REPORTS_DIR"}
    section = (root / "docs" / "contract.md").read_text().split("## Local demo", 1)[1].split("\n## ", 1)[0]
    assert {"DEMO_BIND_ADDRESS", "KEEP_RUNNING", "MONITORING_TOKEN"} <= read
    assert {name for name in read if f"`{name}`" not in section} == set()
