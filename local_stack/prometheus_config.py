"""Derive loopback Prometheus configs and rule files from the committed ones in prometheus/.

The docker compose config (service names as targets) is the one source; `make demo` and the
tests rewrite its targets and intervals here instead of keeping a second hand-edited copy.
"""

from __future__ import annotations

from pathlib import Path

import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"


def rule_files() -> dict[str, str]:
    """Return the committed rule files as {file name: text}."""
    return {path.name: path.read_text() for path in sorted(RULES_DIR.glob("*.yml"))}


def local_prometheus_config(
    targets: dict[str, str],
    rules: list[str],
    interval: str = "15s",
    alertmanager: str | None = None,
) -> str:
    """Return prometheus.yml with each job's target replaced by `targets[job]` ("host:port").

    Jobs without a target here are dropped; `rules` replaces the rule file list (paths relative
    to the config file); `interval` sets both the scrape and the evaluation interval.
    """
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    unknown = set(targets) - {job["job_name"] for job in config["scrape_configs"]}
    if unknown:
        raise KeyError(f"no scrape job named {sorted(unknown)} in {PROMETHEUS_CONFIG}")
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            jobs.append({**job, "static_configs": [{"targets": [targets[job["job_name"]]]}]})
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
