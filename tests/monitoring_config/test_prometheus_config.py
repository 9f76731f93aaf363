"""The loopback config and short-`for:` rules derived from the committed Prometheus files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from local_stack.prometheus_config import (
    PROMETHEUS_CONFIG,
    local_prometheus_config,
    rule_files,
    with_short_for,
    write_file_sd_targets,
)


def test_targets_are_rewritten_and_other_jobs_dropped() -> None:
    config = yaml.safe_load(local_prometheus_config({"evidently_service": "127.0.0.1:1234"}, ["a.yml"], "2s"))
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "evidently_service"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:1234"]}]
    assert config["rule_files"] == ["a.yml"]
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "2s"
    assert config["global"]["scrape_timeout"] == "2s"  # never longer than the interval


def test_a_path_becomes_file_discovery_instead_of_the_compose_dns_lookup(tmp_path: Path) -> None:
    targets = write_file_sd_targets(tmp_path / "prediction_service.json", ["127.0.0.1:2", "127.0.0.1:1"])
    config = yaml.safe_load(local_prometheus_config({"prediction_service": targets}, [], "2s"))
    (job,) = config["scrape_configs"]
    assert "dns_sd_configs" not in job and "static_configs" not in job
    assert job["file_sd_configs"] == [{"files": [str(targets)], "refresh_interval": "2s"}]
    assert json.loads(targets.read_text()) == [{"targets": ["127.0.0.1:1", "127.0.0.1:2"]}]


def test_compose_config_discovers_every_prediction_replica_by_dns() -> None:
    # `--scale prediction_service=N`: one A record per container, each scraped on the service's port.
    committed = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [job for job in committed["scrape_configs"] if job["job_name"] == "prediction_service"]
    assert "static_configs" not in job
    assert job["dns_sd_configs"] == [
        {
            "names": ["prediction_service", "prediction_service_health_insurance"],
            "type": "A",
            "port": 9696,
            "refresh_interval": "15s",
        }
    ]


def test_alertmanager_target_is_kept_when_given() -> None:
    config = yaml.safe_load(local_prometheus_config({}, [], alertmanager="127.0.0.1:9093"))
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]


def test_an_unknown_job_is_an_error() -> None:
    with pytest.raises(KeyError, match="prediction_servce"):
        local_prometheus_config({"prediction_servce": "127.0.0.1:1"}, [])


def test_short_for_changes_only_the_alerts_for() -> None:
    original = yaml.safe_load(rule_files()["alerts.yml"])
    short = yaml.safe_load(with_short_for(rule_files()["alerts.yml"], "3s"))
    for group, short_group in zip(original["groups"], short["groups"], strict=True):
        for rule, short_rule in zip(group["rules"], short_group["rules"], strict=True):
            assert short_rule["for"] == "3s"
            assert {k: v for k, v in short_rule.items() if k != "for"} == {k: v for k, v in rule.items() if k != "for"}
