"""The demo's live views: when it stays up, the reports server, and the Prometheus graph links per dashboard."""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from local_stack import demo
from local_stack.processes import port_open
from local_stack.viewers import dashboard_queries, graph_url, start_reports_server


@pytest.mark.parametrize(
    ("flag", "env", "terminal", "expected"),
    [
        (None, None, True, True),  # a person at a terminal: stay up until Ctrl-C
        (None, None, False, False),  # a pipe or CI: stop by itself
        (None, "0", True, False),
        (None, "1", False, True),
        (False, "1", True, False),  # the flag wins
        (True, "0", False, True),
    ],
)
def test_stays_up_in_a_terminal_unless_told_otherwise(monkeypatch, flag, env, terminal, expected):
    if env is None:
        monkeypatch.delenv("KEEP_RUNNING", raising=False)
    else:
        monkeypatch.setenv("KEEP_RUNNING", env)
    assert demo.keep_running(argparse.Namespace(keep_running=flag), interactive=terminal) is expected


def test_a_bad_keep_running_stops_with_one_line_naming_it(monkeypatch):
    monkeypatch.setenv("KEEP_RUNNING", "yes")
    with pytest.raises(SystemExit, match="KEEP_RUNNING must be 1 or 0, got 'yes'"):
        demo.keep_running(argparse.Namespace(keep_running=None), interactive=True)


def test_each_dashboard_gets_a_graph_link_with_its_key_queries():
    queries = dashboard_queries("ride_duration")
    assert set(queries) == {"Data drift", "Model quality", "Data quality", "Service health"}
    # Drift score per feature against its threshold, RMSE over time, request rate and p99.
    assert 'evidently_feature_drift_score{model="ride_duration"}' in queries["Data drift"]
    assert 'evidently_feature_drift_threshold{model="ride_duration"}' in queries["Data drift"]
    # Every metric of the model's task: a classifier's graph page showed an empty RMSE query.
    assert 'evidently_model_quality{model="ride_duration"}' in queries["Model quality"]
    assert not [q for q in sum(dashboard_queries("churn").values(), []) if "rmse" in q]
    assert any("prediction_http_requests:rate5m" in q for q in queries["Service health"])
    assert any('quantile="0.99"' in q for q in queries["Service health"])
    url = graph_url("http://127.0.0.1:9090", queries["Service health"])
    params = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == "/graph"
    assert [params[f"g{i}.expr"][0] for i in range(2)] == queries["Service health"]
    assert params["g0.tab"] == ["0"] and params["g1.range_input"] == ["15m"]  # graph tab, recent window


def test_reports_server_serves_the_folder_and_stops_by_pid(tmp_path: Path):
    (tmp_path / "index.html").write_text("<h1>Batch monitoring reports</h1>")
    proc, url = start_reports_server(tmp_path, tmp_path / "logs")
    try:
        assert "Batch monitoring reports" in requests.get(f"{url}/", timeout=5).text
    finally:
        proc.stop()
    assert not port_open(int(url.rsplit(":", 1)[1]))


def test_prometheus_pages_are_found_whichever_ui_the_build_serves(tmp_path: Path):
    """Debian's Prometheus serves only the classic UI (/alerts is a 404 there): the printed links must answer."""
    from local_stack.components import prometheus_binary, start_prometheus
    from local_stack.viewers import prometheus_ui

    if prometheus_binary() is None:
        pytest.skip("prometheus is not installed")
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    proc, url = start_prometheus(config, tmp_path)
    try:
        pages = prometheus_ui(url)
        assert requests.get(f"{pages}/alerts", timeout=5).status_code == 200
        graph = requests.get(graph_url(pages, ['up{job="prometheus"}']), timeout=5)
        assert graph.status_code == 200 and graph.url.startswith(pages), graph.url
    finally:
        proc.stop()
