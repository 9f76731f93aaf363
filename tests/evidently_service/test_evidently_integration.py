"""The real process under gunicorn, scraped by a real Prometheus; re-warming from a real MongoDB wire server."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timedelta

import pytest
import requests

from evidently_service import create_app
from evidently_service.settings import Settings
from local_stack.components import prometheus_query
from local_stack.processes import free_port, wait_until
from ride_duration.synthetic import DriftParams

pytestmark = pytest.mark.integration


def test_prometheus_reads_the_drift_gauges_of_the_real_process(
    service_factory, prometheus_factory, write_config, models_dir, make_rows
):
    token = "integration-token"
    _, url = service_factory(
        "evidently_service",
        {
            "EVIDENTLY_CONFIG": str(write_config(evaluation_period_seconds=0.5)),
            "MODELS_DIR": str(models_dir),
            "MONITORING_TOKEN": token,
        },
    )
    rows, labels = make_rows(1000, seed=41, drift=DriftParams(distance_scale=1.6))
    auth = {"Authorization": f"Bearer {token}"}
    for start in range(0, len(rows), 250):
        response = requests.post(
            f"{url}/iterate/ride_duration", json=rows[start : start + 250], headers=auth, timeout=10
        )
        assert response.status_code == 200, response.text
    assert (
        requests.post(f"{url}/feedback/ride_duration", json=labels, headers=auth, timeout=10).json()["matched"] == 1000
    )

    target = url.removeprefix("http://")
    config = f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: evidently_service
    static_configs: [{{targets: ["{target}"]}}]
"""
    _, prometheus = prometheus_factory(config)
    detected = wait_until(
        lambda: prometheus_query(prometheus, 'evidently_feature_drift_detected{feature="trip_distance"} == 1'),
        timeout=40,
        what="trip_distance drift verdict in Prometheus",
    )
    assert detected[0]["metric"]["model"] == "ride_duration"
    score = prometheus_query(prometheus, 'evidently_feature_drift_score{feature="trip_distance"}')
    assert score[0]["metric"]["stattest"] == "wasserstein" and float(score[0]["value"][1]) > 0.1
    assert prometheus_query(prometheus, "evidently_window_rows")[0]["value"][1] == "1000"
    assert len(prometheus_query(prometheus, "evidently_dataset_drift")) == 1
    assert len(prometheus_query(prometheus, "evidently_model_quality")) == 3
    assert prometheus_query(prometheus, "evidently_label_coverage")[0]["value"][1] == "1"
    info = prometheus_query(prometheus, "evidently_reference_info")[0]["metric"]
    assert info["model_version"].startswith("synthetic-") and len(info["reference_hash"]) == 16


def _documents(rows, labels, model_name="ride_duration"):
    documents = []
    for row in rows:
        doc = {**row, "model_name": model_name, "timestamp": datetime.fromisoformat(row["timestamp"])}
        doc["lpep_pickup_datetime"] = datetime.fromisoformat(row["lpep_pickup_datetime"])
        documents.append(doc)
    for doc, label in list(zip(documents, labels, strict=True))[::2]:  # half of them labelled
        doc["target"] = label["duration"]
        doc["target_timestamp"] = doc["timestamp"] + timedelta(minutes=10)
    return documents


def test_a_restart_rewarms_the_window_from_mongodb(mongo, write_config, models_dir, make_rows, monitor_of):
    from pymongo import MongoClient

    from monitoring_core.documents import predictions_collection

    _, uri = mongo
    rows, labels = make_rows(700, seed=42)
    other, other_labels = make_rows(50, seed=43, prefix="other")
    with MongoClient(uri) as client:
        collection = predictions_collection(client, "monitoring")
        collection.insert_many(_documents(rows, labels) + _documents(other, other_labels, model_name="other_model"))
    settings = Settings(
        config_path=write_config(window_size=600),
        models_dir=models_dir,
        mongodb_uri=uri,
        mongodb_database="monitoring",
        rewarm_from_mongodb=True,
        run_evaluators=False,
    )
    app = create_app(settings)
    monitor = monitor_of(app)
    window = monitor.window.snapshot()
    # The newest 600 of this model's 700 documents, oldest first, labels included.
    assert window["request_id"].tolist() == [r["request_id"] for r in rows[100:]]
    result = monitor.evaluate()
    assert result.labelled_rows == 300 and result.drift is not None
    assert result.label_delay[0.5] == pytest.approx(600)
    assert app.test_client().get("/health").json["models"]["ride_duration"]["window_rows"] == 600


def test_rewarm_reads_labels_set_the_way_the_prediction_service_sets_them(
    mongo, write_config, models_dir, make_rows, monitor_of
):
    # The prediction service labels a document with a conditional `$set`; nx-27017 stores that datetime as a
    # string, MongoDB as a BSON datetime. Re-warming must read the label and its time either way.
    from pymongo import MongoClient

    from monitoring_core.documents import label_fields, predictions_collection, unlabelled

    _, uri = mongo
    rows, labels = make_rows(200, seed=44, prefix="set")
    with MongoClient(uri) as client:
        collection = predictions_collection(client, "monitoring")
        documents = _documents(rows, labels)
        for doc in documents:
            doc.pop("target", None)
            doc.pop("target_timestamp", None)
        collection.insert_many(documents)
        for doc, label in list(zip(documents, labels, strict=True))[::2]:
            fields = label_fields(label["duration"], doc["timestamp"] + timedelta(minutes=10))
            assert collection.update_one(unlabelled(doc["request_id"]), {"$set": fields}).modified_count == 1
    settings = Settings(
        config_path=write_config(window_size=600),
        models_dir=models_dir,
        mongodb_uri=uri,
        mongodb_database="monitoring",
        rewarm_from_mongodb=True,
        run_evaluators=False,
    )
    result = monitor_of(create_app(settings)).evaluate()
    assert result.labelled_rows == 100
    assert result.label_delay[0.5] == pytest.approx(600)


def test_an_unreachable_mongodb_only_costs_the_warm_start(write_config, models_dir, monitor_of):
    settings = Settings(
        config_path=write_config(),
        models_dir=models_dir,
        mongodb_uri=f"mongodb://127.0.0.1:{free_port()}",
        rewarm_from_mongodb=True,
        mongodb_timeout_ms=300,
        run_evaluators=False,
    )
    app = create_app(settings)
    assert len(monitor_of(app).window) == 0


class StallingProxy:
    """A TCP proxy to MongoDB that passes the handshake and stalls a connection at its first `find`: a hung server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, watch: bool) -> None:
        try:
            while data := source.recv(65536):
                if watch and b"\x02find\x00" in data:  # the query's command name, as a BSON string element
                    self.stalled.set()
                    return  # never forwarded, never answered; the socket stays open
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_a_mongodb_that_hangs_on_the_query_only_costs_the_warm_start(mongo, write_config, models_dir, monitor_of):
    # Reachable (the handshake answers), then silent: without a socket timeout the re-warm waited forever,
    # and the metrics service never answered (gunicorn killed the booting worker and rebooted it into the same wait).
    proxy = StallingProxy(int(mongo[1].rsplit(":", 1)[1]))
    settings = Settings(
        config_path=write_config(),
        models_dir=models_dir,
        mongodb_uri=f"mongodb://127.0.0.1:{proxy.port}",
        rewarm_from_mongodb=True,
        mongodb_timeout_ms=500,
        run_evaluators=False,
    )
    built: list = []
    builder = threading.Thread(target=lambda: built.append(create_app(settings)), daemon=True)
    started = time.monotonic()
    builder.start()
    builder.join(timeout=20)
    proxy.close()
    assert proxy.stalled.is_set()  # the query was sent and went unanswered
    assert built, "the app was still waiting for MongoDB after 20 s"
    assert len(monitor_of(built[0]).window) == 0
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EVIDENTLY_CONFIG": "/nonexistent/config.yaml"}, "cannot read config"),
        ({"MODELS_DIR": "/nonexistent/models"}, "no such models folder"),
    ],
)
def test_the_command_refuses_to_start_without_config_or_models(env, message):
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "evidently_service"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
