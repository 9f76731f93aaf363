"""Dashboards: generated JSON is committed, round-trips through the SDK models, and is consistent."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from grafana import alert_rules
from grafana import dashboards as generator
from grafana.common import DATASOURCE_UID, REPORTS_URL, TAG
from grafana.queries import load_dashboards, metric_names, panel_queries, panels, substitute, variable_queries
from local_stack.components import prometheus_binary

ROOT = Path(__file__).resolve().parents[2]
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = ROOT / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
CATALOGUE = ROOT / "docs" / "metrics.md"
RULES_DIR = ROOT / "prometheus" / "rules"
BOARDS = load_dashboards()
EXAMPLE_VALUES = {"model": "ride_duration", "feature": "trip_distance"}
# Series Prometheus itself provides.
BUILTIN_METRICS = {"up", "ALERTS", "ALERTS_FOR_STATE"}


def test_four_dashboards_are_committed() -> None:
    assert set(BOARDS) == set(generator.BUILDERS)


@pytest.mark.parametrize("name", sorted(generator.BUILDERS))
def test_committed_json_is_what_the_generator_writes(name: str) -> None:
    committed = (generator.DASHBOARDS_DIR / name).read_text()
    assert committed == generator.render(name), f"run: python -m grafana.dashboards ({name} is stale)"


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_json_round_trips_through_sdk_models(name: str) -> None:
    register_default_plugins()
    board = BOARDS[name]
    again = json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))
    assert again == board


def test_uids_are_unique_and_stable() -> None:
    uids = [board["uid"] for board in BOARDS.values()]
    assert len(uids) == len(set(uids))
    assert all(uid.startswith("ride-") for uid in uids)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panel_ids_are_unique(name: str) -> None:
    ids = [panel["id"] for panel in BOARDS[name]["panels"]]
    ids += [inner["id"] for panel in BOARDS[name]["panels"] for inner in panel.get("panels", [])]
    assert len(ids) == len(set(ids))


def test_provisioned_datasource_has_the_uid_panels_use() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == DATASOURCE_UID


def test_provider_loads_the_dashboards_folder() -> None:
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file"
    # docker-compose.yml mounts grafana/dashboards at this path.
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_uses_the_provisioned_datasource(name: str) -> None:
    for panel in panels(BOARDS[name]):
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
    for variable in BOARDS[name]["templating"]["list"]:
        assert variable["datasource"]["uid"] == DATASOURCE_UID, variable["name"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_has_a_description_and_a_unit(name: str) -> None:
    for panel in panels(BOARDS[name]):
        assert len(panel.get("description", "")) > 20, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_templated_by_model_and_linked(name: str) -> None:
    board = BOARDS[name]
    assert TAG in board["tags"]
    assert "model" in [variable["name"] for variable in board["templating"]["list"]]
    links = board["links"]
    assert any(link["type"] == "dashboards" and TAG in link["tags"] for link in links)
    assert any(link["type"] == "link" and link["url"] == REPORTS_URL for link in links)


def test_queries_on_model_labelled_metrics_filter_by_model() -> None:
    for name, board in BOARDS.items():
        for query in panel_queries(name, board):
            if any(metric.startswith("evidently_") for metric in metric_names(query.expr)):
                assert 'model="$model"' in query.expr, query.where


def recorded_names() -> set[str]:
    """Return the names of every recording rule."""
    names = set()
    for path in RULES_DIR.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def catalogued_names() -> set[str]:
    """Return every metric name in docs/metrics.md's tables."""
    return set(re.findall(r"^\| `(\w+)` \|", CATALOGUE.read_text(), re.M))


def test_every_metric_a_panel_reads_is_catalogued_or_recorded() -> None:
    known = catalogued_names() | recorded_names() | BUILTIN_METRICS
    for name, board in BOARDS.items():
        queries = [query.expr for query in panel_queries(name, board)]
        queries += [variable.selector or "" for variable in variable_queries(board)]
        for expr in queries:
            for metric in metric_names(expr):
                base = re.sub(r"_(bucket|count|sum)$", "", metric)
                assert metric in known or base in known, f"{name}: {metric} is neither in docs/metrics.md nor recorded"


def test_metric_names_finds_selected_metrics_only() -> None:
    expr = 'sum by (le) (rate(a_bucket{job="b_c"}[5m])) / on (x) b:c:d or vector(0) and up offset 5m'
    assert metric_names(expr) == {"a_bucket", "b:c:d", "up"}


def test_every_panel_query_parses_with_promtool(tmp_path: Path) -> None:
    # promtool parses every PromQL expression of a rule file: wrap each query in a recording rule.
    rules = []
    for name, board in sorted(BOARDS.items()):
        for query in panel_queries(name, board):
            rules.append({"record": f"dashboard_query_{len(rules)}", "expr": substitute(query.expr, EXAMPLE_VALUES)})
    assert len(rules) > 30
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard_queries", "rules": rules}]}))
    binary = prometheus_binary("promtool")
    assert binary, "promtool is not installed"
    result = subprocess.run([binary, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rejects_a_broken_query(tmp_path: Path) -> None:
    # The parse check above can fail: the same wrapping reports a syntax error.
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "x", "expr": "sum(rate(up[5m])"}]}]}))
    result = subprocess.run(
        [prometheus_binary("promtool"), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode != 0


def test_substitute_fails_on_an_unknown_variable() -> None:
    with pytest.raises(KeyError, match="segment"):
        substitute('x{segment="$segment"}', EXAMPLE_VALUES)
    assert (
        substitute('x{model="${model}", f=~"[[feature]]"}', EXAMPLE_VALUES)
        == 'x{model="ride_duration", f=~"trip_distance"}'
    )


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panels_fit_the_grid_without_overlapping(name: str) -> None:
    # Nobody can open Grafana here: check the layout a person would see instead.
    taken: dict[tuple[int, int], str] = {}
    for panel in BOARDS[name]["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def alert_names() -> set[str]:
    """Return the names of every alerting rule."""
    names = set()
    for path in RULES_DIR.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["alert"] for rule in group["rules"] if "alert" in rule}
    return names


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_alerts_a_panel_names_exist(name: str) -> None:
    # Every CamelCase word of two or more parts in a description is an alert name: a renamed alert breaks it.
    for panel in panels(BOARDS[name]):
        for word in re.findall(r"\b(?:[A-Z][a-z]+){2,}\b", panel["description"]):
            assert word in alert_names(), f"{panel['title']}: {word} is not an alert in prometheus/rules"


def test_thresholds_in_dashboards_come_from_the_rule_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Retune the rules; the generated panels follow, text and threshold lines alike.
    rules = (RULES_DIR / "alerts.yml").read_text()
    changes = {
        "max by (model) (evidently_label_coverage) >= 0.1": "max by (model) (evidently_label_coverage) >= 0.25",
        "> 2.5 * 3600": "> 3 * 3600",
        "increase(evidently_evaluation_errors_total[10m])": "increase(evidently_evaluation_errors_total[30m])",
    }
    for old, new in changes.items():
        assert rules.count(old) >= 1, old  # the same guard may appear in several rules: retune all of them
        rules = rules.replace(old, new)
    rules = rules.replace("        for: 10m\n", "        for: 20m\n", 1)  # the first rule: DataDriftDetected
    path = tmp_path / "alerts.yml"
    path.write_text(rules)
    monkeypatch.setattr(alert_rules, "RULES", path)
    quality = generator.render("model-quality.json")
    assert "quality alerts need at least 25%." in quality
    assert '"value": 0.25' in quality
    # Quality bounds are per model (its description's `alerts:`), drawn from the exported threshold metric.
    assert "evidently_model_quality_threshold" in quality
    drift = generator.render("data-drift.json")
    assert "Older than 3 hours fires BatchMonitoringStale" in drift
    assert "DataDriftDetected fires after 20 minutes of drift." in drift
    health = generator.render("service-health.json")
    assert 'increase(evidently_evaluation_errors_total{model=\\"$model\\"}[30m])' in health
    assert "raised in the last 30 minutes" in health


def test_a_threshold_the_rule_lost_stops_the_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "alerts.yml"
    path.write_text((RULES_DIR / "alerts.yml").read_text().replace("evidently_label_coverage) >= 0.1", "x) >= 0.1"))
    monkeypatch.setattr(alert_rules, "RULES", path)
    with pytest.raises(ValueError, match="ModelQualityDegraded: expected one comparison of evidently_label_coverage"):
        generator.render("model-quality.json")


@pytest.mark.parametrize(
    ("seconds", "text", "promql"),
    [(0.5, "500 ms", "500ms"), (60, "1 minute", "1m"), (900, "15 minutes", "15m"), (9000, "2.5 hours", "150m")],
)
def test_durations_read_as_people_and_promql_write_them(seconds: float, text: str, promql: str) -> None:
    assert alert_rules.duration_text(seconds) == text
    assert alert_rules.promql_duration(seconds) == promql
