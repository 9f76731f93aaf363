"""Run Alertmanager locally with a loopback copy of the committed alertmanager/alertmanager.yml.

The copy keeps the routes, matchers and inhibitions; only the webhook hosts move to a local
receiver and the grouping waits shrink, so tests and `make demo` exercise the real routing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from local_stack.components import start_ready_binary
from local_stack.processes import ManagedProcess

ALERTMANAGER_CONFIG = Path(__file__).resolve().parent.parent / "alertmanager" / "alertmanager.yml"
# Debian's prometheus-alertmanager package names the binary after the package.
BINARY_NAMES = ("alertmanager", "prometheus-alertmanager")


def alertmanager_binary() -> str | None:
    """Return the path of the Alertmanager binary, or None."""
    return next((found for name in BINARY_NAMES if (found := shutil.which(name))), None)


def local_alertmanager_config(webhook_base: str, wait: str = "1s") -> str:
    """Return the committed config with every webhook sent to `webhook_base` + its path, and short waits."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_base.rstrip("/") + urlsplit(hook["url"]).path
    routes = [config["route"], *config["route"].get("routes", [])]
    for route in routes:
        for key in ("group_wait", "group_interval"):
            if key in route or route is config["route"]:
                route[key] = wait
    return yaml.safe_dump(config, sort_keys=False)


def start_alertmanager(config_file: Path, workdir: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """Start Alertmanager with `config_file` (clustering off); return it and its URL once ready."""
    flags = [
        f"--config.file={config_file}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        "--cluster.listen-address=",
    ]
    return start_ready_binary("alertmanager", alertmanager_binary(), "prometheus-alertmanager", flags, workdir, port)
