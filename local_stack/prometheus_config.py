"""Derive loopback Prometheus configs and rule files from the committed ones in prometheus/.

The docker compose config (service names as targets) is the one source; `make demo` and the
tests rewrite its targets and intervals here instead of keeping a second hand-edited copy.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"


def rule_files() -> dict[str, str]:
    """Return the committed rule files as {file name: text}."""
    return {path.name: path.read_text() for path in sorted(RULES_DIR.glob("*.yml"))}


# The ways the committed config finds targets; a loopback copy replaces them with its own.
_DISCOVERY = ("static_configs", "dns_sd_configs", "file_sd_configs")


def local_prometheus_config(
    targets: dict[str, str | Path],
    rules: list[str],
    interval: str = "15s",
    alertmanager: str | None = None,
) -> str:
    """Return prometheus.yml with each job's targets replaced by `targets[job]`.

    A "host:port" string becomes a static target; a Path becomes a `file_sd_configs` file (see
    write_file_sd_targets), so replicas can come and go without a reload. Jobs without a target here
    are dropped; `rules` replaces the rule file list (paths relative to the config file); `interval`
    sets both the scrape and the evaluation interval (and the file's re-read period).
    """
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    unknown = set(targets) - {job["job_name"] for job in config["scrape_configs"]}
    if unknown:
        raise KeyError(f"no scrape job named {sorted(unknown)} in {PROMETHEUS_CONFIG}")
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name in targets:
            kept = {key: value for key, value in job.items() if key not in _DISCOVERY}
            target = targets[name]
            if isinstance(target, Path):
                kept["file_sd_configs"] = [{"files": [str(target)], "refresh_interval": interval}]
            else:
                kept["static_configs"] = [{"targets": [target]}]
            jobs.append(kept)
    config["scrape_configs"] = jobs
    config["rule_files"] = list(rules)
    timeout = config["global"].get("scrape_timeout")
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    if timeout and _seconds(timeout) > _seconds(interval):
        config["global"]["scrape_timeout"] = interval
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    else:
        config.pop("alerting", None)
    return yaml.safe_dump(config, sort_keys=False)


def write_file_sd_targets(path: Path, targets: list[str]) -> Path:
    """Write (atomically) a Prometheus file_sd targets file listing `targets` ("host:port"); return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    # Prometheus watches the file: a rename is seen whole, a file being written could be read half-way.
    partial.write_text(json.dumps([{"targets": sorted(targets)}]))
    partial.replace(path)
    return path


def with_short_for(rules_text: str, duration: str) -> str:
    """Return a rule file with every alert's `for:` set to `duration` (for fast end-to-end tests)."""
    rules = yaml.safe_load(rules_text)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = duration
    return yaml.safe_dump(rules, sort_keys=False)


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    raise ValueError(f"unsupported duration {duration!r}")
