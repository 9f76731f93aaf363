"""Prometheus config and alert rules: promtool checks, promtool unit tests, and the contract's names."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from local_stack.components import prometheus_binary
from local_stack.prometheus_config import PROMETHEUS_CONFIG, PROMETHEUS_DIR, RULES_DIR, local_prometheus_config

ROOT = PROMETHEUS_DIR.parent
RULE_TESTS = PROMETHEUS_DIR / "tests" / "alerts_test.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
# The alert names themselves are checked against docs/contract.md by tests/test_contract.py.
SEVERITIES = {"critical", "warning", "info"}
# Fires for ever by design (it proves the alert path): no severity route, no case where it is quiet.
WATCHDOG = "Watchdog"
RUNBOOK_URL = "{{ $externalLabels.runbook_base }}#"
# Lost records and valid requests the model failed are facts, not blips: their alerts fire on the first one.
LOSS_ALERTS = {"MonitoringRecordsDropped", "MonitoringRecordsQuarantined", "ModelAnswersUnusable"}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run promtool and return the finished process (output captured)."""
    binary = prometheus_binary("promtool")
    assert binary, "promtool is not installed: apt-get install -y prometheus"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def alert_rules() -> list[dict]:
    """Return every alerting rule of every committed rule file."""
    rules = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [rule for rule in group["rules"] if "alert" in rule]
    return rules


def runbook_anchors() -> set[str]:
    """Return the GitHub-style anchors of the runbook's headings."""
    headings = re.findall(r"^#{2,3} (.+)$", RUNBOOK.read_text(), re.M)
    return {re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    # The config loads the rule files: a glob matching nothing would silently load no alerts.
    assert "SUCCESS: 2 rule files found" in result.stdout, result.stdout


def test_rule_files_are_valid() -> None:
    result = promtool("check", "rules", *map(str, sorted(RULES_DIR.glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["alerts_test.yml", "recording_test.yml"])
def test_promtool_unit_tests_pass(name: str) -> None:
    result = promtool("test", "rules", name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    # A rule file whose drift guard is removed must break the "too few rows" case.
    alerts = (RULES_DIR / "alerts.yml").read_text()
    broken = alerts.replace("and on (model) model:evidently_window_has_enough_rows:bool == 1", "")
    assert broken != alerts
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "alerts.yml").write_text(broken)
    (tmp_path / "rules" / "recording.yml").write_text((RULES_DIR / "recording.yml").read_text())
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert "too few rows does not fire" in result.stdout + result.stderr


def test_every_alert_has_severity_annotations_and_a_runbook_section() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert WATCHDOG in rules
    anchors = runbook_anchors()
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in (SEVERITIES if name != WATCHDOG else {"none"}), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        # One base for every link: the external label, never a path written into a rule.
        url = rule["annotations"]["runbook_url"]
        assert url == RUNBOOK_URL + name.lower(), f"{name}: runbook_url {url!r}"
        assert name.lower() in anchors, f"{name}: docs/runbook.md has no section #{name.lower()}"


def test_runbook_base_is_one_absolute_url_kept_off_notifications() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    base = urlsplit(config["global"]["external_labels"]["runbook_base"])
    assert base.scheme in {"http", "https"} and base.netloc, base.geturl()
    assert base.path.endswith("docs/runbook.md"), base.geturl()
    # External labels are added to every alert sent out; this one is only for the templates.
    assert {"action": "labeldrop", "regex": "runbook_base"} in config["alerting"]["alert_relabel_configs"]


def test_rule_unit_tests_render_the_runbook_base(tmp_path: Path) -> None:
    # Without the external label the links render as a bare "#anchor": the unit tests notice.
    tests = RULE_TESTS.read_text()
    first = "    external_labels: &runbook_base"
    broken = re.sub(r"^    external_labels: \*runbook_base\n", "", tests, flags=re.M)
    assert first in broken and broken != tests
    (tmp_path / "rules").mkdir()
    for path in RULES_DIR.glob("*.yml"):
        (tmp_path / "rules" / path.name).write_text(path.read_text())
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / RULE_TESTS.name).write_text(broken)
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert 'runbook_url="#' in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), f"alerts without a case that fires: {sorted(names - fires)}"
    quiet_expected = names - {WATCHDOG}
    assert quiet_expected - quiet == set(), (
        f"alerts without a case that must not fire: {sorted(quiet_expected - quiet)}"
    )


def test_warnings_wait_several_minutes() -> None:
    # A warning that fires on one evaluation pages people for blips.
    for rule in alert_rules():
        # Lost records are facts, not blips: their alerts fire on the first one.
        if rule["labels"]["severity"] == "warning" and rule["alert"] not in LOSS_ALERTS:
            minutes = int(rule["for"].removesuffix("m"))
            assert minutes >= 5, rule["alert"]


@pytest.mark.parametrize("interval", ["1s", "15s"])
def test_loopback_config_derived_from_the_committed_one_is_valid(tmp_path: Path, interval: str) -> None:
    for name in ("alerts.yml", "recording.yml"):
        (tmp_path / name).write_text((RULES_DIR / name).read_text())
    text = local_prometheus_config(
        {"prediction_service": "127.0.0.1:9696", "evidently_service": "127.0.0.1:8085"},
        ["alerts.yml", "recording.yml"],
        interval=interval,
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    loaded = yaml.safe_load(text)
    assert [job["job_name"] for job in loaded["scrape_configs"]] == ["prediction_service", "evidently_service"]
    assert "alerting" not in loaded
