"""Start, wait for and stop local processes by PID, polling for readiness (never fixed sleeps)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll `predicate` until it returns something truthy; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Return whether something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str) -> bool:
    """Return whether GET `url` answers 2xx."""
    return requests.get(url, timeout=1).ok


@dataclass
class ManagedProcess:
    """A process we started, with its log file; stopped by its own PID (and its group)."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} is not started"
        return self.popen.pid

    def start(self) -> ManagedProcess:
        """Start the process in its own session so its children can be stopped with it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.popen = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, predicate: Callable[[], object], timeout: float = 30.0) -> ManagedProcess:
        """Wait until `predicate` holds, failing early (with the log tail) if the process dies."""

        def ready() -> object:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            return predicate()

        try:
            wait_until(lambda: self._check(ready), timeout, self.name)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.log_tail()}") from None
        return self

    @staticmethod
    def _check(ready: Callable[[], object]) -> object:
        try:
            return ready()
        except RuntimeError:
            raise
        except Exception:  # noqa: BLE001
            return None

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines of the process log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Send `sig` to the process group, then SIGKILL after `timeout`."""
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def python_module(module: str, *args: str) -> list[str]:
    """Return the command line that runs `python -m module` with this interpreter."""
    return [sys.executable, "-m", module, *args]
