"""N prediction-service replicas behind one round-robin address (nginx), as `--scale` runs them in compose.

Each replica is its own `python -m prediction_service` with its own port, spool folder and
prometheus multiprocess folder (shared ones would mix up replicas); Prometheus finds them all
through a file_sd targets file (local_stack/prometheus_config.py write_file_sd_targets).
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from local_stack.components import start_service
from local_stack.processes import ManagedProcess, free_port, http_ok
from local_stack.proxy import nginx_binary

NGINX_CONFIG = """
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    # Round robin over the replicas, with keep-alive connections to them.
    upstream prediction_service {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 1m;
        location / {{
            proxy_pass http://prediction_service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


@dataclass
class Replicas:
    """The replicas and the front the demo or a test started; `url` is the one address clients use."""

    url: str
    replica_urls: list[str]
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def targets(self) -> list[str]:
        """Return the replicas' "host:port" scrape targets."""
        return [url.removeprefix("http://") for url in self.replica_urls]

    def stop(self) -> None:
        """Stop the front, then every replica (each drains its queues on SIGTERM)."""
        for proc in reversed(self.processes):
            proc.stop(timeout=30)


def replica_count(text: str) -> int:
    """Parse a replica count (`DEMO_REPLICAS`, `--replicas`): a whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"DEMO_REPLICAS / --replicas must be a whole number >= 1, got {text!r}")
    return int(text)


def start_front(workdir: Path, upstreams: list[str], port: int | None = None) -> tuple[ManagedProcess, str]:
    """Start nginx on loopback, round-robin over `upstreams` ("host:port"); return it and its URL."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed: apt-get install -y nginx-light")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"        server {target};" for target in upstreams)
    config = workdir / "nginx.conf"
    config.write_text(NGINX_CONFIG.format(workdir=workdir, servers=servers, port=port))
    args = [binary, "-p", str(workdir), "-e", str(workdir / "nginx-error.log"), "-c", str(config)]
    proc = ManagedProcess("nginx", [*args, "-g", "daemon off;"], workdir / "nginx.out").start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(lambda: http_ok(f"{url}/health"), timeout=30)
    return proc, url


def start_replicas(
    count: int, workdir: Path, env: dict[str, str], port: int | None = None, ports: list[int] | None = None
) -> Replicas:
    """Start `count` prediction-service replicas with `env` and a round-robin front on `port`."""
    replicas = Replicas(url="", replica_urls=[])

    def start(number: int) -> tuple[ManagedProcess, str]:
        own = {
            **env,
            # Never shared between replicas: each spools and counts for itself.
            "PREDICTION_SPOOL_DIR": str(workdir / f"replica-{number}" / "spool"),
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"replica-{number}" / "prometheus_multiproc"),
        }
        replica_port = ports[number - 1] if ports else None
        return start_service("prediction_service", workdir / f"replica-{number}", own, port=replica_port)

    try:
        # Side by side: each loads the model and forks its workers in a few seconds.
        with ThreadPoolExecutor(max_workers=count) as pool:
            started = [pool.submit(start, number) for number in range(1, count + 1)]
        # Every start has finished here: keep the ones that came up (so they are stopped on failure).
        for future in started:
            if future.exception() is None:
                proc, url = future.result()
                replicas.processes.append(proc)
                replicas.replica_urls.append(url)
        for future in started:
            future.result()  # the first failed start, if any, raises here
        front, replicas.url = start_front(workdir / "front", replicas.targets, port)
        replicas.processes.append(front)
    except BaseException:
        replicas.stop()
        raise
    return replicas
