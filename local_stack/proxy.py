"""The compose stack's nginx in front of a local prediction service (for the slow-client benchmark).

Runs Debian's nginx (`apt-get install -y nginx-light`) with `docker/prediction-proxy-nginx.conf`, the
file the `prediction_proxy` container mounts, pointed at a loopback upstream. Two lines differ, as
Debian's nginx (1.22) predates `resolve` on an upstream server: Docker's DNS resolver is dropped and the
upstream is an address.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from local_stack.processes import ManagedProcess, free_port, port_open

PROXY_CONFIG = Path(__file__).resolve().parent.parent / "docker" / "prediction-proxy-nginx.conf"


def nginx_binary() -> str | None:
    """Return the nginx binary (Debian installs it in /usr/sbin, often off a user's PATH), or None."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def local_config(upstream: str, port: int, workdir: Path) -> str:
    """Return a whole nginx.conf around the compose proxy's server block, for loopback use."""
    server = PROXY_CONFIG.read_text()
    server = server.replace("server prediction_service:9696 resolve;", f"server {upstream};")
    server = server.replace("listen 9696;", f"listen 127.0.0.1:{port};")
    server = "\n".join(line for line in server.splitlines() if not line.startswith("resolver "))
    temp = " ".join(
        f"{kind}_temp_path {workdir / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"worker_processes 1;\nerror_log {workdir / 'error.log'} warn;\npid {workdir / 'nginx.pid'};\n"
        f"events {{ worker_connections 4096; }}\nhttp {{\n{temp}\n{server}\n}}\n"
    )


def start_proxy(upstream: str, workdir: Path) -> tuple[ManagedProcess, str]:
    """Start nginx in front of `upstream` (host:port); return it and its base URL once it listens."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed: apt-get install -y nginx-light")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "nginx.conf"
    config.write_text(local_config(upstream, port, workdir))
    args = [binary, "-p", str(workdir), "-c", str(config), "-g", "daemon off;"]
    proc = ManagedProcess("nginx", args, workdir / "nginx.out").start()
    proc.wait_ready(lambda: port_open(port), timeout=15)
    return proc, f"http://127.0.0.1:{port}"
