"""Start, wait for and stop local processes by PID, polling for readiness (never fixed sleeps)."""

from __future__ import annotations

import contextlib
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


def connect_host(bind: str) -> str:
    """Return the address to reach a server listening on `bind` (loopback for the wildcard addresses)."""
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind


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
        """Send `sig` to the process group, then SIGKILL whatever of the group is left after `timeout`.

        The group outlives its leader when a child survives it (a gunicorn worker whose master exited),
        so the group is checked, not just the process we started.
        """
        if self.popen is None:
            return
        stop_groups([self], timeout=timeout, sig=sig)


def group_alive(pgid: int) -> bool:
    """Return whether any process (zombies aside) is still in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_state(pid) not in ("Z", None) for pid in _group_members(pgid))


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def _state(pid: int) -> str | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_groups(procs: list[ManagedProcess], timeout: float = 10.0, sig: int = signal.SIGTERM) -> list[int]:
    """Stop the process groups of `procs` together: `sig` to all, SIGKILL to any left after `timeout`.

    Return the groups still alive 5 s after SIGKILL (normally none). Waiting on every group at once
    bounds the whole stop by `timeout` + 5 s however many processes there are, where stopping them one
    by one on a loaded machine took long enough for people to give up on it.
    """
    started = [p for p in procs if p.popen is not None]
    for proc in started:
        _signal_group(proc.popen.pid, sig)

    def remaining() -> list[int]:
        # A live leader means a live group (no /proc scan); once it is reaped (our own children stay zombies
        # in their group until then), the group may still hold its children.
        return [p.popen.pid for p in started if p.popen.poll() is None or group_alive(p.popen.pid)]

    left = _wait_for_empty(remaining, timeout)
    for pgid in left:
        _signal_group(pgid, signal.SIGKILL)
    left = _wait_for_empty(remaining, 5.0)
    for proc in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(0.5)
    return left


def _wait_for_empty(remaining: Callable[[], list[int]], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = remaining()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = remaining()
    return left


# Every process a local stack starts inherits this variable (ManagedProcess passes the environment on), so
# what daemonises itself out of its group (a double fork, a new session) can still be found and stopped.
RUN_MARKER = "LOCAL_STACK_RUN"


def marked_processes(marker: str) -> list[int]:
    """Return the PIDs (this process aside) whose environment holds RUN_MARKER=marker."""
    needle = f"{RUN_MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and _state(int(entry.name)) not in ("Z", None):
            found.append(int(entry.name))
    return found


def sweep(marker: str, timeout: float = 5.0) -> list[int]:
    """SIGKILL every process carrying the run's marker; return the PIDs still alive after `timeout`."""
    for pid in marked_processes(marker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    left = marked_processes(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = marked_processes(marker)
    return left


def python_module(module: str, *args: str) -> list[str]:
    """Return the command line that runs `python -m module` with this interpreter."""
    return [sys.executable, "-m", module, *args]
