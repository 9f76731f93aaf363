"""End to end: real services, real Prometheus with the committed rules, traffic with injected drift.

Proves that every dashboard query returns data from what the services actually export, and
that the drift and quality alerts fire after drift is injected and stay quiet on reference-like
traffic.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

from grafana.queries import load_dashboards, panel_queries, substitute, variable_queries
from local_stack.alertmanager import local_alertmanager_config, start_alertmanager
from local_stack.components import models_dir_for, start_pushgateway
from local_stack.processes import free_port, wait_until
from local_stack.prometheus_config import PROMETHEUS_CONFIG, local_prometheus_config, rule_files, with_short_for
from monitoring_core.estimation import prepare_estimator
from monitoring_core.model_folder import load_model_folder
from ride_duration.schema import DESCRIPTION
from ride_duration.synthetic import DriftParams, generate_trips
from usage_simulation.rows import to_payloads

pytestmark = pytest.mark.integration

MODEL = "ride_duration"
CLASSIFIER = "wine"


def classifier_folder(folder: Path) -> tuple[list[dict], list[dict]]:
    """Write a wine classifier's model folder (prepared estimator too); return its /iterate rows and labels."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_wine(as_frame=True)
    features = ["alcohol", "malic_acid", "color_intensity", "proline"]
    classes = ["barolo", "grignolino", "barbera"]
    frame = data.frame[features].copy()
    frame["cultivar"] = [classes[t] for t in data.target]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame[features], frame["cultivar"])
    frame["prediction"] = model.predict(frame[features])
    for index, cls in enumerate(model.classes_):
        frame[f"p_{cls}"] = model.predict_proba(frame[features])[:, index]
    folder.mkdir(parents=True)
    description = {
        "name": CLASSIFIER,
        "task": "classification",
        "classes": classes,
        "target": {"name": "cultivar"},
        "prediction": {"probabilities": {c: f"p_{c}" for c in classes}},
        "features": [{"name": f, "kind": "numerical", "minimum": 0, "maximum": 5000} for f in features],
        "alerts": {"accuracy": {"min": 0.5}},  # a healthy classifier: its quality alert must stay quiet
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(description))
    # 178 rows, three times over: enough rows for the estimator (this checks panels, not the estimate).
    pd.concat([frame] * 3, ignore_index=True).to_parquet(folder / "reference.parquet", index=False)
    prepare_estimator(load_model_folder(folder))
    rows, labels = [], []
    for i, record in enumerate(frame.to_dict("records")):
        row = {k: record[k] for k in (*features, "prediction", *(f"p_{c}" for c in classes))}
        rows.append({**row, "request_id": f"wine-{i}", "timestamp": datetime.now(UTC).isoformat()})
        labels.append({"request_id": f"wine-{i}", "cultivar": record["cultivar"]})
    return rows, labels


TOKEN = "end-to-end-token"
WINDOW = 1000  # rows per phase: each phase fills the whole window
BATCH = 100  # rides per /predict call (the service's default batch limit)
# Several features at once, as an upstream change would: longer trips, pickups in zones the
# reference never saw, passenger counts going missing, and slower rides (concept drift).
DRIFT = DriftParams(distance_scale=1.8, new_zone_share=0.5, missing_share=0.4, congestion=1.5)
BAD_INPUTS = (
    {"DOLocationID": 74, "trip_distance": 2.5},  # missing_field
    {"PULocationID": "74", "DOLocationID": 74, "trip_distance": 2.5},  # wrong_type
    {"PULocationID": 74, "DOLocationID": 74, "trip_distance": -3.0},  # out_of_range
    {"PULocationID": 74, "DOLocationID": 74, "trip_distance": None},  # missing_field (null)
)
# A whole TLC row is served (UNKNOWN_FIELDS=keep): the schema-change panels need its extra columns.
WHOLE_ROW = {"PULocationID": 74, "DOLocationID": 74, "trip_distance": 2.5, "VendorID": 2, "fare_amount": 9.5}


def metrics_service_config(tmp_path: Path) -> Path:
    """Write the committed metrics-service config with a small window and a 1 s evaluation period."""
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "monitoring_core" / "monitoring.yaml").read_text())
    config["defaults"].update(
        window_size=WINDOW,
        min_rows=800,
        evaluation_period_seconds=1,
        min_labelled_rows=100,
        segment_min_rows=100,
        segment_min_labelled_rows=30,
    )
    path = tmp_path / "evidently.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def query(url: str, promql: str) -> list[dict]:
    """Run an instant query and return its result vector."""
    response = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    return response.json()["data"]["result"]


def query_range(url: str, promql: str, seconds: int = 120) -> list[dict]:
    """Run a range query over the last `seconds`, as a Grafana panel does."""
    end = time.time()
    params = {"query": promql, "start": end - seconds, "end": end, "step": 2}
    response = requests.get(f"{url}/api/v1/query_range", params=params, timeout=10)
    response.raise_for_status()
    return response.json()["data"]["result"]


def alerts(url: str, name: str) -> list[dict]:
    """Return the active (pending or firing) alerts named `name`."""
    response = requests.get(f"{url}/api/v1/alerts", timeout=5)
    response.raise_for_status()
    return [alert for alert in response.json()["data"]["alerts"] if alert["labels"]["alertname"] == name]


def wait_for(url: str, promql: str, timeout: float, what: str) -> list[dict]:
    """Poll an instant query until it returns something."""
    return wait_until(lambda: query(url, promql), timeout, what, interval=0.5)


def send_rides(prediction_url: str, drift: DriftParams, seed: int) -> list[tuple[str, float]]:
    """Send one window of rides in batches; return (request id, true duration) pairs."""
    payloads = to_payloads(DESCRIPTION, generate_trips(WINDOW, seed=seed, drift=drift))
    sent = []
    with requests.Session() as session:
        for start in range(0, len(payloads), BATCH):
            chunk = payloads[start : start + BATCH]
            response = session.post(f"{prediction_url}/predict", json=[body for body, _ in chunk], timeout=30)
            assert response.status_code == 200, response.text
            sent += [(answer["request_id"], truth) for answer, (_, truth) in zip(response.json(), chunk, strict=True)]
    return sent


def send_feedback(prediction_url: str, labels: list[tuple[str, float]]) -> None:
    """Send ground truth for the given predictions through the prediction service."""
    body = [{"request_id": request_id, "duration": duration} for request_id, duration in labels]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = requests.post(f"{prediction_url}/feedback", json=body, headers=headers, timeout=30)
    assert response.status_code in (200, 202), response.text


def send_bad_inputs(prediction_url: str, evidently_url: str) -> None:
    """Send inputs each service must reject (the rejection panels need data), and one whole TLC row."""
    for body in BAD_INPUTS:
        response = requests.post(f"{prediction_url}/predict", json=body, timeout=10)
        assert response.status_code == 400, response.text
    response = requests.post(f"{prediction_url}/predict", json=WHOLE_ROW, timeout=10)
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = requests.post(
        f"{evidently_url}/iterate/{MODEL}", json=[{"request_id": "x"}], headers=headers, timeout=10
    )
    assert response.status_code == 400, response.text


class _Recorder(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.posts.append((self.path, body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass  # quiet: the test reports what it needs


@pytest.fixture
def webhook() -> Iterator[ThreadingHTTPServer]:
    """A local webhook receiver recording Alertmanager's posts as (path, body) in `.posts`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def notified(server: ThreadingHTTPServer, path: str, alertname: str) -> bool:
    """Return whether Alertmanager posted a firing `alertname` to the receiver at `path`."""
    return any(
        posted_path == path and alert["status"] == "firing" and alert["labels"]["alertname"] == alertname
        for posted_path, body in server.posts  # type: ignore[attr-defined]
        for alert in body["alerts"]
    )


def push_batch_success(pushgateway_url: str) -> None:
    """Push the metrics of a successful batch run of MODEL that just ended, as the flow does."""
    from prefect_flows import run_metrics

    now = time.time()
    registry = run_metrics.success_registry({"rows": {"period": 600}, "drift": {"dataset_drift": False}}, now - 5, now)
    run_metrics.push_run(pushgateway_url, MODEL, registry, success=True)


@pytest.fixture
def stack(
    tmp_path: Path,
    artifacts_dir: Path,
    mongo: tuple,
    service_factory: Callable,
    prometheus_factory: Callable,
    webhook: ThreadingHTTPServer,
) -> Iterator[dict[str, str]]:
    """Start MongoDB, both services, Alertmanager and Prometheus (committed rules, `for:` shortened)."""
    _, mongo_uri = mongo
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(local_alertmanager_config(f"http://127.0.0.1:{webhook.server_port}"))
    alertmanager, alertmanager_url = start_alertmanager(am_config, tmp_path / "alertmanager")
    # A real Pushgateway holding what one successful batch run pushes (prefect_flows/run_metrics.py;
    # tests/prefect_flows runs the real flow against one): the batch panels need data too.
    pushgateway, pushgateway_url = start_pushgateway(tmp_path / "pushgateway")
    push_batch_success(pushgateway_url)
    ports = {job: free_port() for job in ("prediction_service", "evidently_service", "prometheus")}
    urls = {job: f"http://127.0.0.1:{port}" for job, port in ports.items()}
    urls["pushgateway"] = pushgateway_url
    # Prometheus first: its first scrapes then overlap the services' start-up.
    rules = {name: with_short_for(text, "2s") if name == "alerts.yml" else text for name, text in rule_files().items()}
    targets = {job: url.removeprefix("http://") for job, url in urls.items()}
    config = local_prometheus_config(
        targets, sorted(rules), interval="1s", alertmanager=alertmanager_url.removeprefix("http://")
    )
    prometheus_factory(config, rule_files=rules, port=ports["prometheus"])
    # Two models, as a user with a regressor and a classifier runs it: the dashboards' classifier panels
    # need a classifier, the "estimated vs realised" panel a prepared estimator.
    models = models_dir_for(artifacts_dir / "reference.parquet", tmp_path)
    prepare_estimator(load_model_folder(models / MODEL))
    wine_rows, wine_labels = classifier_folder(models / CLASSIFIER)
    evidently_env = {
        "MODELS_DIR": str(models),
        "EVIDENTLY_CONFIG": str(metrics_service_config(tmp_path)),
        "MONITORING_TOKEN": TOKEN,
    }
    prediction_env = {
        "MODEL_DIR": str(artifacts_dir),
        "MODEL_NAME": MODEL,
        "MONGODB_URI": mongo_uri,
        "MONGODB_DATABASE": "end_to_end",
        "EVIDENTLY_SERVICE_URL": urls["evidently_service"],
        "MONITORING_TOKEN": TOKEN,
        "WORKERS": "1",
        "PREDICTION_SPOOL_DIR": str(tmp_path / "spool"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc"),
    }
    # Both services start at once (the prediction service retries forwarding until the other is up).
    with ThreadPoolExecutor(max_workers=2) as pool:
        starts = [
            pool.submit(service_factory, "evidently_service", evidently_env, port=ports["evidently_service"]),
            pool.submit(service_factory, "prediction_service", prediction_env, port=ports["prediction_service"]),
        ]
        services = [start.result()[0] for start in starts]
    for job in targets:
        wait_for(urls["prometheus"], f'up{{job="{job}"}} == 1', 30, f"first scrape of {job}")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path, body in ((f"/iterate/{CLASSIFIER}", wine_rows), (f"/feedback/{CLASSIFIER}", wine_labels)):
        assert requests.post(urls["evidently_service"] + path, json=body, headers=auth, timeout=30).status_code == 200
    yield {
        "prediction": urls["prediction_service"],
        "evidently": urls["evidently_service"],
        "prometheus": urls["prometheus"],
    }
    alertmanager.stop()
    pushgateway.stop()
    # Both services drain their queues on shutdown (several seconds each): stop them side by side.
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda service: service.stop(), services))


def test_drift_alert_and_every_dashboard_query_against_live_services(
    stack: dict[str, str], webhook: ThreadingHTTPServer
) -> None:
    prometheus = stack["prometheus"]

    # Phase 1: reference-like traffic fills the window; no drift verdict, no drift alert.
    reference_like = send_rides(stack["prediction"], DriftParams(), seed=101)
    send_feedback(stack["prediction"], reference_like)
    wait_for(prometheus, f'model:evidently_window_has_enough_rows:bool{{model="{MODEL}"}} == 1', 60, "a full window")
    # Enough verdicts on the reference-like window that a 2 s `for:` would have fired on any drift.
    wait_for(prometheus, f'count_over_time(evidently_dataset_drift{{model="{MODEL}"}}[1m]) >= 8', 60, "eight verdicts")
    assert query(prometheus, f'max_over_time(evidently_dataset_drift{{model="{MODEL}"}}[1m]) == 0'), (
        "the reference-like window was judged as drifted"
    )
    assert alerts(prometheus, "DataDriftDetected") == []
    # Same for quality: several RMSE values over the labelled reference-like rows, no quality alert.
    wait_for(
        prometheus, f'count_over_time(evidently_model_quality{{model="{MODEL}", metric="rmse"}}[1m]) >= 5', 60, "RMSE"
    )
    assert alerts(prometheus, "ModelQualityDegraded") == []

    # Phase 2: drifted traffic (and some bad inputs) replaces the window; the alert must fire.
    drift_started = time.time()
    drifted = send_rides(stack["prediction"], DRIFT, seed=202)
    send_feedback(stack["prediction"], drifted)
    send_bad_inputs(stack["prediction"], stack["evidently"])
    firing = wait_until(
        lambda: [alert for alert in alerts(prometheus, "DataDriftDetected") if alert["state"] == "firing"],
        90,
        "DataDriftDetected firing",
        interval=0.5,
    )
    assert firing[0]["labels"]["model"] == MODEL
    assert firing[0]["labels"]["severity"] == "warning"
    active_at = datetime.strptime(firing[0]["activeAt"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    assert active_at.timestamp() >= int(drift_started) - 1, "the alert was already active before the drift"

    # Alertmanager routes it by severity to the team webhook, with the committed routing tree.
    wait_until(lambda: notified(webhook, "/alerts/warning", "DataDriftDetected"), 30, "the warning webhook")
    assert not notified(webhook, "/alerts/critical", "DataDriftDetected")
    # Its runbook link is absolute: the committed config's runbook_base plus the alert's section.
    base = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["external_labels"]["runbook_base"]
    posted = [alert for _, body in webhook.posts for alert in body["alerts"]]  # type: ignore[attr-defined]
    links = {
        alert["annotations"]["runbook_url"] for alert in posted if alert["labels"]["alertname"] == "DataDriftDetected"
    }
    assert links == {f"{base}#datadriftdetected"}
    # The always-firing Watchdog takes the same path to its own receiver (the dead man's switch). It fires
    # before Prometheus has discovered the Alertmanager, so its first notification is dropped and the
    # resend a minute later (--rules.alert.resend-delay) delivers it: seen 63 s after Prometheus started.
    wait_until(lambda: notified(webhook, "/alerts/watchdog", "Watchdog"), 90, "the watchdog webhook")

    # The drifted rides are also 50% slower: once their labels are in, the quality alert fires.
    wait_until(
        lambda: [alert for alert in alerts(prometheus, "ModelQualityDegraded") if alert["state"] == "firing"],
        60,
        "ModelQualityDegraded firing",
        interval=0.5,
    )

    # Every dashboard query, variables substituted, returns data from this live stack.
    empty = []
    for name, board in load_dashboards().items():
        values, models, features = {}, [MODEL], [""]
        for variable in variable_queries(board):
            selector = substitute(variable.selector or "", values) or None
            params = {"match[]": selector} if selector else {}
            response = requests.get(f"{prometheus}/api/v1/label/{variable.label}/values", params=params, timeout=5)
            options = response.json()["data"]
            assert options, f"{name}: variable ${variable.variable} has no values"
            values[variable.variable] = MODEL if variable.variable == "model" else options[0]
            if variable.variable == "model":
                assert MODEL in options
                # The classifier is monitored (no prediction service of its own here): on the metrics service's boards.
                models = [m for m in (MODEL, CLASSIFIER) if m in options]
            if variable.variable == "feature":
                features = options
        for panel_query in panel_queries(name, board):
            # A panel of one task (classifier panels) shows data for a model of that task; a per-feature line of one
            # kind (a category's unseen share, a number's histogram) for a feature of that kind.
            if not any(
                query_range(prometheus, substitute(panel_query.expr, {**values, "model": model, "feature": feature}))
                for model in models
                for feature in (features if "$feature" in panel_query.expr else [values.get("feature", "")])
            ):
                empty.append(f"{panel_query.where}: {panel_query.expr}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
