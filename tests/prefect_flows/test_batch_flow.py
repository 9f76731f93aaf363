"""The real flow over nx-27017: drift flagged where injected, reports, history, index and workspace written."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pymongo import MongoClient

from local_stack.components import start_mongo, start_pushgateway
from local_stack.logged_predictions import insert_documents, prediction_documents
from prefect_flows.publish import SHARE_PANEL_TITLE
from ride_duration.model import load_model
from ride_duration.schema import CATEGORICAL_FEATURES, DESCRIPTION, NUMERICAL_FEATURES, drift_tests
from ride_duration.synthetic import DriftParams, generate_trips

pytestmark = pytest.mark.integration

DB = "prediction_service"
DAY = datetime(2026, 1, 5, tzinfo=UTC)
# name -> (start hour, rows, drift, label share)
PERIODS = {
    "reference_like": (10, 1400, DriftParams(), 0.8),
    "drifted_unlabelled": (11, 600, DriftParams(distance_scale=1.8, new_zone_share=0.4), 0.0),
    "tiny": (12, 10, DriftParams(), 1.0),
    "empty": (13, 0, DriftParams(), 1.0),
    # Quiet hours of clean traffic: below the calibrated minimum "not enough data", above it no drift.
    "quiet_120": (14, 120, DriftParams(), 1.0),
    "quiet_250": (15, 250, DriftParams(), 1.0),
}
QUALITY_WORDS = ["MAE", "Error Distribution", "Predicted vs Actual", "pickup_borough"]
MAX_ROWS = 1200  # below the reference-like period's 1,400 rows, so that run samples


def _period(name: str) -> tuple[datetime, datetime]:
    start = DAY + timedelta(hours=PERIODS[name][0])
    return start, start + timedelta(hours=1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, artifacts_dir, taxi_models_dir, prefect_env):
    """Seed nx-27017 with four logged periods, run the flow over each in this process; yield what it produced."""
    workdir = tmp_path_factory.mktemp("batch")
    proc, uri = start_mongo(workdir / "mongo")
    gateway, gateway_url = start_pushgateway(workdir / "pushgateway")
    try:
        yield from _seed_and_run(workdir, uri, artifacts_dir, taxi_models_dir, gateway_url)
    finally:
        gateway.stop()
        proc.stop()


def _taxi(summaries: dict[str, dict]) -> dict:
    """Return the taxi model's summary of a flow run (the only model of the test's MODELS_DIR)."""
    assert list(summaries) == ["ride_duration"]
    return summaries["ride_duration"]


def _seed_and_run(workdir: Path, uri: str, artifacts_dir: Path, models_dir: Path, gateway_url: str):
    model = load_model(artifacts_dir / "model.pkl")
    docs = []
    for seed, (name, (_, rows, drift, labels)) in enumerate(PERIODS.items()):
        if rows:
            start, end = _period(name)
            rides = generate_trips(rows, seed=100 + seed, drift=drift)
            docs += prediction_documents(
                rides, model, start, end, label_share=labels, seed=seed, id_prefix=name, description=DESCRIPTION
            )
    insert_documents(uri, DB, docs)
    env = {
        "MONGODB_URI": uri,
        "MONGODB_DATABASE": DB,
        "MODELS_DIR": str(models_dir),
        "REPORTS_DIR": str(workdir / "reports"),
        "BATCH_MAX_ROWS": str(MAX_ROWS),
        "PUSHGATEWAY_URL": gateway_url,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        from prefect_flows.batch_monitoring import batch_monitoring

        pushed_after: dict[str, float] = {}
        summaries = {}
        for name in PERIODS:
            pushed_after[name] = time.time()
            summaries[name] = _taxi(batch_monitoring(*_period(name)))
        yield {
            "gateway": gateway_url,
            "started": pushed_after,
            "uri": uri,
            "env": env,
            "reports_dir": workdir / "reports",
            "summaries": summaries,
            "rerun": lambda name: _taxi(batch_monitoring(*_period(name))),
        }


def test_drift_period_flagged_and_reference_like_not(stack):
    drifted, clean = stack["summaries"]["drifted_unlabelled"], stack["summaries"]["reference_like"]
    assert drifted["status"] == clean["status"] == "ok"
    assert drifted["drift"]["dataset_drift"] is True
    assert {"trip_distance", "PULocationID"} <= set(drifted["drift"]["drifted_features"])
    assert clean["drift"]["dataset_drift"] is False
    assert clean["drift"]["drifted_features"] == []
    assert set(clean["drift"]["columns"]) == set(drift_tests())
    # The zone tests use total variation with a threshold calibrated for the rows, never below its 0.1 floor.
    zones = clean["drift"]["columns"]["PULocationID"]
    assert zones["stattest"] == "tv" and zones["threshold"] >= 0.1 and zones["calibrated_rows"] <= zones["rows"]


def test_json_results_match_the_verdicts(stack):
    summary = stack["summaries"]["drifted_unlabelled"]
    on_disk = json.loads((stack["reports_dir"] / summary["run_id"] / "summary.json").read_text())
    assert on_disk["drift"] == summary["drift"]
    evidently_json = json.loads((stack["reports_dir"] / summary["reports"]["drift"]["json"]).read_text())
    scores = {m["config"]["column"]: m["value"] for m in evidently_json["metrics"] if "column" in m["config"]}
    for column, result in summary["drift"]["columns"].items():
        assert math.isclose(scores[column], result["score"], rel_tol=1e-12)


def test_html_reports_exist_and_contain_the_report(stack):
    reports_dir = stack["reports_dir"]
    clean = stack["summaries"]["reference_like"]
    assert set(clean["reports"]) == {"drift", "data_summary", "quality"}
    for kind, paths in clean["reports"].items():
        html = reports_dir / paths["html"]
        assert html.name == f"ride_duration_20260105T100000Z-20260105T110000Z_{kind}.html"
        text = html.read_text()
        assert text.lstrip().startswith("<!DOCTYPE html>") and len(text) > 100_000  # the JS bundle is inlined
        # The widgets name what they show: every monitored column, or the regression metrics by borough.
        expected = QUALITY_WORDS if kind == "quality" else [*CATEGORICAL_FEATURES, *NUMERICAL_FEATURES]
        assert all(word in text for word in expected), kind
        # The header says what the report covers, and that the rows are a seeded sample.
        header = text[text.index('<div id="batch-run"') :][:1500]
        assert "2026-01-05 10:00 \u2013 11:00 UTC" in header
        assert f"analyses {MAX_ROWS:,} of them" in header and f"(seed {clean['sampling']['seed']})" in header, header
    # Columns typed from the schema, read from MongoDB: the id and the prediction's time fill Evidently's table,
    # and the regression plots run on the prediction's time instead of the row index.
    summary_page = (reports_dir / clean["reports"]["data_summary"]["html"]).read_text()
    assert '["id column", "request_id", "request_id"]' in summary_page
    assert '["date column", "timestamp", "timestamp"]' in summary_page
    assert '["datetime columns", "1", "1"]' in summary_page
    quality_page = (reports_dir / clean["reports"]["quality"]["html"]).read_text()
    assert "timestamp (minute)" in quality_page and "Index binned" not in quality_page


def test_quality_on_labelled_rows_and_unavailable_without_labels(stack):
    clean, drifted = stack["summaries"]["reference_like"], stack["summaries"]["drifted_unlabelled"]
    quality = clean["quality"]
    assert quality["available"] is True
    assert 0 < quality["mae"] <= quality["rmse"] < 15
    assert {s["segment"] for s in quality["segments"]} >= {"Manhattan"}
    assert 0.7 < clean["label_coverage"] < 0.9
    assert drifted["quality"] == {"available": False, "reason": "no ground truth in this period"}
    assert "quality" not in drifted["reports"] and drifted["label_coverage"] == 0.0
    assert "quality unavailable" in drifted["message"]


def test_large_period_is_sampled_with_a_seed_and_says_so(stack):
    clean = stack["summaries"]["reference_like"]
    assert clean["rows"]["period"] == 1400 and clean["rows"]["analysed"] == MAX_ROWS
    assert clean["sampling"]["applied"] is True and clean["sampling"]["max_rows"] == MAX_ROWS
    assert "seeded sample of 1200 of 1400 rows" in clean["message"]
    assert stack["summaries"]["drifted_unlabelled"]["sampling"]["applied"] is False


@pytest.mark.parametrize("name, rows", [("tiny", 10), ("empty", 0)])
def test_tiny_and_empty_periods_say_not_enough_data(stack, name, rows):
    summary = stack["summaries"][name]
    assert summary["status"] == "not_enough_data"
    assert summary["message"].startswith(f"not enough data: {rows} rows")
    assert summary["reports"] == {} and summary["drift"] is None
    assert not any((stack["reports_dir"] / summary["run_id"]).glob("*.html"))


@pytest.mark.parametrize("name", ["quiet_120", "quiet_250"])
def test_quiet_clean_periods_never_read_as_drift(stack, name):
    summary = stack["summaries"][name]
    if summary["status"] == "not_enough_data":
        assert summary["drift"] is None and summary["rows"]["analysed"] < summary["min_rows"]
    else:
        assert summary["drift"]["dataset_drift"] is False and summary["drift"]["rows"] == PERIODS[name][1]
    assert not summary["message"].startswith("dataset drift")


def test_reports_collection_holds_each_run(stack):
    with MongoClient(stack["uri"], tz_aware=True) as client:
        docs = {d["run_id"]: d for d in client[DB]["reports"].find({})}
    assert set(docs) == {s["run_id"] for s in stack["summaries"].values()}
    drifted = docs[stack["summaries"]["drifted_unlabelled"]["run_id"]]
    assert drifted["drift"]["dataset_drift"] is True and drifted["rows"]["period"] == 600
    assert drifted["period_start"] == _period("drifted_unlabelled")[0]
    assert drifted["reports"]["drift"]["html"].endswith("_drift.html")
    assert docs[stack["summaries"]["tiny"]["run_id"]]["status"] == "not_enough_data"


def test_index_lists_every_run_newest_first(stack):
    text = (stack["reports_dir"] / "index.html").read_text()
    ids = [stack["summaries"][name]["run_id"] for name in ("empty", "tiny", "drifted_unlabelled", "reference_like")]
    positions = [text.index(f"{rid}/summary.json") for rid in ids]
    assert positions == sorted(positions)
    assert "DATASET DRIFT" in text and "not enough data" in text
    assert stack["summaries"]["reference_like"]["reports"]["drift"]["html"] in text


def test_workspace_holds_the_snapshots(stack):
    from evidently.ui.workspace import Workspace

    summary = stack["summaries"]["reference_like"]
    workspace = Workspace(summary["workspace"]["path"])
    project = workspace.get_project(summary["workspace"]["project_id"])
    assert project is not None and project.name == "ride_duration"
    runs = {str(r) for r in workspace.list_runs(project.id)}
    for name in ("reference_like", "drifted_unlabelled"):
        assert set(stack["summaries"][name]["workspace"]["snapshots"].values()) <= runs
    snapshot = workspace.get_run(project.id, summary["workspace"]["snapshots"]["drift"])
    assert snapshot is not None and snapshot.timestamp.replace(tzinfo=UTC) == _period("reference_like")[1]


def test_batch_drift_scores_equal_the_online_evaluator_on_the_same_rows(stack, reference):
    """Parity: the flow's drift scores equal monitoring_core.drift.DriftEvaluator's (the online service's)."""
    from monitoring_core.drift import DriftEvaluator
    from monitoring_core.model_folder import load_model_folder
    from monitoring_core.monitoring_config import drift_settings
    from prefect_flows.io_mongo import read_predictions
    from prefect_flows.period import Period

    summary = stack["summaries"]["drifted_unlabelled"]
    progress: list[int] = []
    period = Period(*_period("drifted_unlabelled"))
    with MongoClient(stack["uri"], tz_aware=True) as client:
        rows = read_predictions(client, DB, DESCRIPTION, period, batch_size=250, progress=progress.append)
    assert progress == [250, 500, 600]  # one progress step per cursor batch, and the total
    # The metrics service's own settings: its config.yaml over the description's pinned tests.
    folder = load_model_folder(Path(stack["env"]["MODELS_DIR"]) / "ride_duration")
    config = drift_settings(None, folder)
    online = DriftEvaluator(
        DESCRIPTION, reference, config.tests, config.dataset_drift_share, config.multiple_testing, config.calibration
    )
    online = online.evaluate(rows)
    batch = summary["drift"]
    assert batch["dataset_drift"] == online.dataset_drift
    assert math.isclose(batch["drifted_share"], online.drifted_share)
    assert batch["rows"] == online.rows and batch["false_alarm_rate"] == online.false_alarm_rate
    for column, result in online.columns.items():
        assert math.isclose(batch["columns"][column]["score"], result.score, rel_tol=0, abs_tol=1e-9), column
        # The same calibrated threshold, derived independently by the flow and here.
        assert batch["columns"][column]["threshold"] == result.threshold, column
        assert batch["columns"][column]["detected"] == result.detected, column


def test_command_line_runs_the_flow_once(stack, prefect_env):
    start, end = _period("tiny")
    command = ["-m", "prefect_flows.batch_monitoring", "--start", start.isoformat(), "--end", end.isoformat()]
    result = subprocess.run(
        [sys.executable, *command],
        env={**os.environ, **prefect_env, **stack["env"]},
        capture_output=True,
        text=True,
        timeout=600,  # a fresh process: imports and the temporary server take minutes on a loaded machine
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ride_duration_20260105T120000Z-20260105T130000Z: not enough data: 10 rows" in result.stdout
    # The Prefect settings prefect_flows sets before importing Prefect, read back from Prefect in the process.
    assert "(start-up timeout 300 s); server analytics off" in result.stdout
    assert f"index: {Path(stack['env']['REPORTS_DIR']) / 'index.html'}" in result.stdout


def test_evidently_ui_serves_drift_and_quality_over_time(stack, tmp_path):
    """`evidently ui` on the workspace returns the runs' drift share and RMSE as time series."""
    import requests

    from local_stack.processes import ManagedProcess, free_port, http_ok

    workspace = stack["summaries"]["reference_like"]["workspace"]
    port = free_port()
    binary = str(Path(sys.executable).parent / "evidently")
    args = [binary, "ui", "--workspace", workspace["path"], "--host", "127.0.0.1", "--port", str(port)]
    ui = ManagedProcess("evidently-ui", args, tmp_path / "ui.log", env={"DO_NOT_TRACK": "1"}).start()
    try:
        url = f"http://127.0.0.1:{port}"
        ui.wait_ready(lambda: http_ok(f"{url}/api/version"), timeout=90)
        assert [p["name"] for p in requests.get(f"{url}/api/projects", timeout=10).json()] == ["ride_duration"]
        series = [
            {
                "tags": [],
                "metadata": {},
                "metric": "evidently:metric_v2:DriftedColumnsCount",
                "metric_labels": {"value_type": "share"},
            },
            {"tags": [], "metadata": {}, "metric": "evidently:metric_v2:RMSE", "metric_labels": {}},
        ]
        answer = requests.post(
            f"{url}/api/v2/snapshots/{workspace['project_id']}/data_series_batch",
            json={"series_filter": series},
            timeout=30,
        )
        assert answer.status_code in (200, 201), answer.text[:500]
        # One series per distinct metric config: runs of different sizes have different calibrated
        # thresholds, so the drifted share comes in several series of the same filter.
        values: dict[int, list[float]] = {0: [], 1: []}
        for s in answer.json()["series"]:
            values[s["filter_index"]] += [v for v in s["values"] if v is not None]
        summaries = stack["summaries"]
        with_reports = [n for n, summary in summaries.items() if summary["status"] == "ok"]
        assert sorted(values[0]) == sorted(summaries[n]["drift"]["drifted_share"] for n in with_reports)
        rmse = sorted(summaries[n]["quality"]["rmse"] for n in with_reports if summaries[n]["quality"]["available"])
        assert sorted(values[1]) == pytest.approx(rmse)
        dashboard = requests.get(f"{url}/api/v2/dashboards/{workspace['project_id']}", timeout=10).json()
        panels = {p["title"]: p for p in dashboard["panels"]}
        assert set(panels) >= {SHARE_PANEL_TITLE, "Regression quality (minutes)"}
        # Bars rise from 0: the UI fits a line's axis to the data (a steady 0.5 showed one tick, "1").
        assert panels[SHARE_PANEL_TITLE]["plot_params"]["plot_type"] == "bar"
    finally:
        ui.stop()


def pushed(gateway_url: str) -> dict[tuple[str, str], float]:
    """Return the batch_monitoring samples the Pushgateway exposes, by (metric, model)."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{gateway_url}/metrics", timeout=5).text
    return {
        (sample.name, sample.labels["model"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("batch_monitoring_") and sample.labels.get("job") == "batch_monitoring"
    }


def test_each_run_pushes_its_success_to_the_pushgateway(stack):
    """The real flow pushed to a real Pushgateway: the model's success timestamp is what Prometheus scrapes."""
    metrics = pushed(stack["gateway"])
    success = metrics[("batch_monitoring_last_success_timestamp_seconds", "ride_duration")]
    # At least as late as the last in-process run (the command-line test may have pushed later).
    assert stack["started"]["empty"] <= success <= time.time()
    assert metrics[("batch_monitoring_last_run_timestamp_seconds", "ride_duration")] == success
    assert 0 < metrics[("batch_monitoring_last_run_duration_seconds", "ride_duration")] < 600
    # The last run was a not-enough-data period: few rows, and no drift verdict rather than a 0.
    assert metrics[("batch_monitoring_last_run_rows", "ride_duration")] in (0, 10)
    assert ("batch_monitoring_last_run_dataset_drift", "ride_duration") not in metrics
    assert ("batch_monitoring_last_failure_timestamp_seconds", "ride_duration") not in metrics


def test_a_failed_run_pushes_its_failure_and_still_fails(stack, monkeypatch, tmp_path):
    from prefect_flows.batch_monitoring import batch_monitoring

    before = time.time()
    with pytest.raises(LookupError, match="no model folder named 'no_such_model'"):
        batch_monitoring(*_period("tiny"), model_name="no_such_model")
    metrics = pushed(stack["gateway"])
    failed = metrics[("batch_monitoring_last_failure_timestamp_seconds", "no_such_model")]
    assert before <= failed == metrics[("batch_monitoring_last_run_timestamp_seconds", "no_such_model")]
    assert ("batch_monitoring_last_success_timestamp_seconds", "no_such_model") not in metrics
    assert ("batch_monitoring_last_success_timestamp_seconds", "ride_duration") in metrics  # other groups kept


def test_an_unreachable_pushgateway_does_not_fail_the_run(stack, monkeypatch):
    from local_stack.processes import free_port
    from prefect_flows.batch_monitoring import batch_monitoring

    monkeypatch.setenv("PUSHGATEWAY_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    summary = _taxi(batch_monitoring(*_period("tiny")))
    assert summary["status"] == "not_enough_data"


def test_rerunning_a_period_replaces_its_results(stack):
    """Last in this module: it replaces the drifted period's snapshots the tests above read."""
    from evidently.ui.workspace import Workspace

    before = stack["summaries"]["drifted_unlabelled"]
    after = stack["rerun"]("drifted_unlabelled")
    assert after["run_id"] == before["run_id"] and after["drift"] == before["drift"]
    with MongoClient(stack["uri"]) as client:
        assert client[DB]["reports"].count_documents({"run_id": after["run_id"]}) == 1
    workspace = Workspace(after["workspace"]["path"])
    runs = {str(r) for r in workspace.list_runs(after["workspace"]["project_id"])}
    assert set(after["workspace"]["snapshots"].values()) <= runs
    assert not set(before["workspace"]["snapshots"].values()) & runs
    assert (stack["reports_dir"] / "index.html").read_text().count(f"{after['run_id']}/summary.json") == 1
    # The Pushgateway now holds this run's verdict: dataset drift on its 600 rows.
    metrics = pushed(stack["gateway"])
    assert metrics[("batch_monitoring_last_run_dataset_drift", "ride_duration")] == 1
    assert metrics[("batch_monitoring_last_run_rows", "ride_duration")] == 600


def test_flow_parameters_override_the_settings_and_show_on_the_run(stack, monkeypatch, tmp_path):
    """Re-analyses the 250-row quiet hour with min_rows raised above it, into its own folders."""
    from prefect import get_client

    from prefect_flows.batch_monitoring import batch_monitoring

    monkeypatch.setenv("PUSHGATEWAY_URL", "")  # empty is unset: leave the pushed verdicts above alone
    # A min_rows parameter can only raise the calibrated minimum (~316 rows here): 400 shows on the run.
    state = batch_monitoring(
        *_period("quiet_250"), min_rows=400, min_labelled_rows=5, reports_dir=tmp_path / "r", return_state=True
    )
    summary = _taxi(state.result())
    assert summary["status"] == "not_enough_data" and summary["rows"]["period"] == 250
    assert summary["min_rows"] == 400
    assert (tmp_path / "r" / summary["run_id"] / "summary.json").exists()
    with get_client(sync_client=True) as client:
        parameters = client.read_flow_run(state.state_details.flow_run_id).parameters
    assert parameters["min_rows"] == 400 and parameters["min_labelled_rows"] == 5
    assert Path(parameters["reports_dir"]) == tmp_path / "r"
