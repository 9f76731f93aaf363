"""Alertmanager config: valid for amtool, and every severity the rules use reaches its receiver."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from local_stack.alertmanager import local_alertmanager_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
ALERTS = ROOT / "prometheus" / "rules" / "alerts.yml"
EXPECTED_RECEIVER = {"critical": "pager-webhook", "warning": "team-webhook", "info": "info-webhook"}
# The always-firing alert is routed by name, to the dead man's switch, whatever its severity.
WATCHDOG, WATCHDOG_RECEIVER = "Watchdog", "watchdog-webhook"


def amtool(*args: str) -> subprocess.CompletedProcess:
    """Run amtool and return the finished process (output captured)."""
    binary = shutil.which("amtool")
    assert binary, "amtool is not installed: apt-get install -y prometheus-alertmanager"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def severities_in_rules() -> set[str]:
    """Return the severities the alert rules other than the Watchdog set."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {
        rule["labels"]["severity"]
        for group in groups
        for rule in group["rules"]
        if "alert" in rule and rule["alert"] != WATCHDOG
    }


def test_config_is_valid() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("severity", sorted(EXPECTED_RECEIVER))
def test_severity_routes_to_its_receiver(severity: str) -> None:
    result = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", f"severity={severity}", "alertname=DataDriftDetected"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == EXPECTED_RECEIVER[severity]


def test_every_rule_severity_has_a_route() -> None:
    assert severities_in_rules() <= set(EXPECTED_RECEIVER)


@pytest.mark.parametrize("severity", ["none", "critical"])
def test_watchdog_goes_to_the_dead_mans_switch_only(severity: str) -> None:
    result = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", f"alertname={WATCHDOG}", f"severity={severity}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == WATCHDOG_RECEIVER


def test_watchdog_is_never_inhibited() -> None:
    # An inhibited Watchdog stops its heartbeat and the dead man's switch pages for nothing.
    for inhibit in yaml.safe_load(CONFIG.read_text())["inhibit_rules"]:
        for matcher in inhibit["target_matchers"]:
            label, _, value = matcher.partition("=")
            assert not (label.rstrip("!") == "alertname" and WATCHDOG in value), matcher


def test_inhibitions_name_real_alerts() -> None:
    names = {
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    config = yaml.safe_load(CONFIG.read_text())
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            label, _, value = matcher.partition("=")
            if label == "alertname":
                for name in value.strip('~"').split("|"):
                    assert name in names, f"inhibit rule names unknown alert {name}"


def test_loopback_copy_keeps_the_routing_and_moves_only_the_webhooks(tmp_path: Path) -> None:
    text = local_alertmanager_config("http://127.0.0.1:5001/")
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    assert amtool("check-config", str(path)).returncode == 0
    local, committed = yaml.safe_load(text), yaml.safe_load(CONFIG.read_text())
    urls = [hook["url"] for receiver in local["receivers"] for hook in receiver["webhook_configs"]]
    paths = ("critical", "warning", "info", "watchdog")
    assert urls == [f"http://127.0.0.1:5001/alerts/{path}" for path in paths]
    assert local["inhibit_rules"] == committed["inhibit_rules"]
    for severity, receiver in EXPECTED_RECEIVER.items():
        result = amtool("config", "routes", "test", f"--config.file={path}", f"severity={severity}")
        assert result.stdout.strip() == receiver
