"""Two prediction replicas behind one round-robin front: a real Prometheus sees the sum of both.

Real processes throughout: two `python -m prediction_service` replicas, nginx in front, nx-27017,
a recording metrics service, and Prometheus with the committed rules finding the replicas through
a file_sd targets file (the local counterpart of compose's dns_sd).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from pymongo import MongoClient

from local_stack.components import prometheus_query
from local_stack.demo import parse_args, write_prometheus_config
from local_stack.processes import wait_until
from local_stack.prometheus_config import local_prometheus_config, rule_files, with_short_for, write_file_sd_targets
from local_stack.recorder import Recorder
from local_stack.replicas import Replicas, nginx_binary, start_replicas
from monitoring_core.documents import predictions_collection

needs_nginx = pytest.mark.skipif(nginx_binary() is None, reason="no nginx: apt-get install -y nginx-light")

RIDE = {
    "PULocationID": 74,
    "DOLocationID": 75,
    "trip_distance": 1.2,
    "passenger_count": 1,
    "lpep_pickup_datetime": "2021-01-05T08:30:00",
}
SENT = 120
# HighPredictionLatency's threshold lowered to 0 s so that the test's fast requests fire it: what is
# checked is which series the alert is computed from, not the committed 500 ms.
LATENCY_THRESHOLD = 'endpoint!~".*(metrics|health).*"}\n            > 0.5\n'


def value(url: str, promql: str) -> float | None:
    """Return the single value of an instant query, or None when it has no result yet."""
    result = prometheus_query(url, promql)
    return float(result[0]["value"][1]) if len(result) == 1 else None


@pytest.fixture
def two_replicas(tmp_path: Path, artifacts_dir: Path, mongo, prometheus_factory) -> Iterator[tuple[Replicas, str]]:
    """Start two replicas, the front and Prometheus; yield (replicas, Prometheus URL)."""
    _, uri = mongo
    sink = Recorder(keep_bodies=False).start()
    env = {
        "MODEL_DIR": str(artifacts_dir),
        "MONGODB_URI": uri,
        "MONGODB_DATABASE": "replicas",
        "EVIDENTLY_SERVICE_URL": sink.url,
        "WORKERS": "1",
    }
    replicas = start_replicas(2, tmp_path / "replicas", env)
    targets = write_file_sd_targets(tmp_path / "targets" / "prediction_service.json", replicas.targets)
    rules = dict(rule_files())
    assert LATENCY_THRESHOLD in rules["alerts.yml"], "the HighPredictionLatency threshold moved"
    lowered = rules["alerts.yml"].replace(LATENCY_THRESHOLD, LATENCY_THRESHOLD.replace("0.5", "0"), 1)
    rules["alerts.yml"] = with_short_for(lowered, "1s")
    config = local_prometheus_config({"prediction_service": targets}, sorted(rules), interval="1s")
    _, prometheus = prometheus_factory(config, rule_files=rules)
    replicas.sink = sink  # type: ignore[attr-defined] - the test reads what the replicas forwarded
    yield replicas, prometheus
    replicas.stop()
    sink.stop()


@pytest.mark.integration
@needs_nginx
def test_prometheus_sees_the_sum_of_both_replicas(two_replicas: tuple[Replicas, str], mongo) -> None:
    replicas, prometheus = two_replicas
    wait_until(lambda: value(prometheus, 'count(up{job="prediction_service"} == 1)') == 2, 60, "both replicas scraped")
    with requests.Session() as session:

        def send(numbers: range) -> None:
            for number in numbers:
                ride = {**RIDE, "request_id": f"r-{number}"}
                response = session.post(f"{replicas.url}/predict", json=ride, timeout=10)
                assert response.status_code == 200, response.text

        # One ride per replica first, scraped before the rest: a counter series that Prometheus first
        # sees at its final value has no increase, and rate() (so the latency rule) would read 0.
        send(range(2))
        requests_seen = 'count(count by (instance) (prediction_http_requests_total{endpoint="/predict"}))'
        wait_until(lambda: value(prometheus, requests_seen) == 2, 60, "the first predictions of both replicas scraped")
        send(range(2, SENT))

    # The front spread the load: each replica served part of it, and together all of it.
    own = [_predictions(url) for url in replicas.replica_urls]
    assert all(count > 0 for count in own), own
    assert sum(own) == SENT

    # Prometheus scrapes each replica as its own instance and the sum is every prediction served.
    wait_until(lambda: value(prometheus, "sum(prediction_predictions_total)") == SENT, 60, "the sum of both replicas")
    per_instance = prometheus_query(prometheus, "sum by (instance) (prediction_predictions_total)")
    assert sorted(int(float(r["value"][1])) for r in per_instance) == sorted(own)

    # HighPredictionLatency (threshold lowered to 0): one alert for the service, no instance label, its
    # value the p99 of both replicas' buckets summed, its traffic guard the rate of both.
    buckets = 'prediction_http_request_duration_seconds_bucket{endpoint="/predict"}'
    assert len(prometheus_query(prometheus, f"count by (instance) ({buckets})")) == 2
    summed = f"histogram_quantile(0.99, sum by (le) (rate({buckets}[5m])))"

    seen: dict = {}

    def fired_on_both() -> dict | None:
        # The alert's value is the summed p99 at its last evaluation; the query here runs a moment later,
        # when rate()'s extrapolation over each replica's series has moved a little: hence the tolerance.
        seen["alert"], seen["summed"] = _firing(prometheus, "HighPredictionLatency"), value(prometheus, summed)
        alert, expected = seen["alert"], seen["summed"]
        return alert if alert and expected == pytest.approx(float(alert["value"]), rel=0.05) else None

    try:
        alert = wait_until(fired_on_both, 120, "HighPredictionLatency firing on both replicas' buckets")
    except TimeoutError as exc:
        rules = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        latency = [r for g in rules for r in g["rules"] if r["name"] == "HighPredictionLatency"]
        guard = prometheus_query(prometheus, "endpoint:prediction_http_requests:rate5m")
        raise AssertionError(f"{exc}; last seen {seen}; rule {latency}; guard {guard}") from None
    assert "instance" not in alert["labels"] and alert["labels"]["endpoint"] == "/predict"

    # Both replicas logged to MongoDB and forwarded to the metrics service: nothing served is missing.
    _, uri = mongo
    collection = predictions_collection(MongoClient(uri), "replicas")
    wait_until(lambda: collection.count_documents({}) == SENT, 60, "every prediction in MongoDB")
    wait_until(lambda: replicas.sink.counts.get("/iterate/ride_duration", 0) == SENT, 60, "every row forwarded")


def _predictions(url: str) -> int:
    text = requests.get(f"{url}/metrics", timeout=5).text
    lines = [line for line in text.splitlines() if line.startswith("prediction_predictions_total")]
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in lines))


def _firing(prometheus: str, name: str) -> dict | None:
    alerts = requests.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    firing = [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]
    assert len(firing) <= 1, firing
    return firing[0] if firing else None


def test_demo_scrapes_every_replica_through_a_targets_file(tmp_path: Path) -> None:
    replicas = ["127.0.0.1:9697", "127.0.0.1:9698"]
    urls = {"prediction_service": "http://127.0.0.1:9696"}  # the front: never scraped when replicas are given
    config = yaml.safe_load(write_prometheus_config(tmp_path, urls, 9090, "2s", "10s", replicas).read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "prediction_service"]
    (discovery,) = job["file_sd_configs"]
    (listed,) = discovery["files"]
    assert json.loads(Path(listed).read_text()) == [{"targets": replicas}]


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", ""])
def test_demo_refuses_a_bad_replica_count_in_one_line(text: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--replicas", text])
    assert stopped.value.code == 2


def test_demo_replicas_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_REPLICAS", "2")
    assert parse_args([]).replicas == 2
    monkeypatch.delenv("DEMO_REPLICAS")
    assert parse_args([]).replicas == 1
