"""Labels on the real processes (gunicorn, 2 workers, nx-27017 over TCP, a recording metrics service).

/feedback answers at once and the writers decide: one winner per id in MongoDB and forwarded, a label
that overtakes its prediction still lands, a flood of labels leaves /predict answering, and labels sent
while MongoDB is down are spooled and applied once it is back.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from prediction_support import RIDE, Stack, metric_value, service_env, stack_on_persistent_mongo

from local_stack.components import start_mongo, start_service
from local_stack.processes import wait_until
from local_stack.recorder import Recorder
from monitoring_core.documents import label_time

pytestmark = pytest.mark.integration

FORWARDED = "/feedback/ride_duration"
HORIZON_SECONDS = 3  # PREDICTION_LABEL_RETRY_SECONDS here: unknown ids are given up quickly


@pytest.fixture(scope="module")
def label_stack(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One service, MongoDB and recorder for this module, with a short retry horizon for unknown ids."""
    workdir = tmp_path_factory.mktemp("label_stack")
    mongo_proc, uri = start_mongo(workdir / "mongo")
    rec = Recorder().start()
    env = {**service_env(artifacts_dir, workdir, uri, rec)}
    env["PREDICTION_LABEL_RETRY_SECONDS"] = str(HORIZON_SECONDS)
    proc, url = start_service("prediction_service", workdir / "services", env)
    yield Stack(proc, url, mongo_proc, uri, rec, env)
    proc.stop()
    rec.stop()
    mongo_proc.stop()


def scrape(stack: Stack) -> str:
    return requests.get(f"{stack.url}/metrics", timeout=5).text


def feedback_counts(stack: Stack) -> Counter:
    text = scrape(stack)
    results = ("queued", "accepted", "duplicate", "unknown", "invalid")
    return Counter({r: metric_value(text, "prediction_feedback_total", result=r) for r in results})


def settled(stack: Stack) -> None:
    """Wait until no label waits in a writer and every queue is empty."""
    wait_until(
        lambda: stack.metric("prediction_pending_labels") == 0 and stack.metric("prediction_queue_size") == 0,
        timeout=30,
        what="writers idle",
    )


def predict(stack: Stack, request_id: str) -> None:
    requests.post(f"{stack.url}/predict", json={**RIDE, "request_id": request_id}, timeout=5).raise_for_status()


def forwarded(stack: Stack, prefix: str) -> list[dict]:
    return [r for r in stack.recorder.rows(FORWARDED) if r["request_id"].startswith(prefix)]


def test_each_item_answered_at_once_and_decided_by_the_database(label_stack: Stack) -> None:
    stack = label_stack
    settled(stack)
    before = feedback_counts(stack)
    for i in range(3):
        predict(stack, f"fb-{i}")
    body = [
        {"request_id": "fb-1", "duration": 17.5},
        {"request_id": "nobody", "duration": 3.0},
        {"request_id": "fb-1", "duration": 20.0},
        {"request_id": "fb-2", "duration": 1512.0},
    ]
    response = requests.post(f"{stack.url}/feedback", json=body, timeout=5)
    assert response.status_code == 202
    answer = response.json()
    assert [(i["request_id"], i["outcome"]) for i in answer["items"]] == [
        ("fb-1", "queued"),
        ("nobody", "queued"),
        ("fb-1", "duplicate"),
        ("fb-2", "invalid"),
    ]
    assert answer["items"][3]["details"][0] == {
        "field": "3.duration",
        "message": answer["items"][3]["details"][0]["message"],
        "reason": "out_of_range",
    }
    collection = stack.predictions
    labelled = wait_until(
        lambda: collection.find_one({"request_id": "fb-1", "target": {"$exists": True}}), 15, "label applied"
    )
    assert labelled["target"] == 17.5
    # A BSON datetime on MongoDB, a string on nx-27017: label_time reads both (docs/prediction_service.md).
    assert labelled["timestamp"] - timedelta(milliseconds=1) <= label_time(labelled["target_timestamp"])
    again = requests.post(f"{stack.url}/feedback", json={"request_id": "fb-1", "duration": 99.0}, timeout=5)
    assert again.status_code == 202 and again.json()["items"][0]["outcome"] == "queued"

    def decided() -> Counter | None:
        delta = feedback_counts(stack) - before
        return delta if delta["unknown"] == 1 and delta["duplicate"] == 2 else None

    delta = wait_until(decided, timeout=HORIZON_SECONDS + 20, what="every label decided")
    assert delta == Counter({"queued": 3, "accepted": 1, "duplicate": 2, "unknown": 1, "invalid": 1})
    assert collection.find_one({"request_id": "fb-1"})["target"] == 17.5
    untouched = {"request_id": {"$in": ["fb-0", "fb-2"]}, "target": {"$exists": True}}
    assert collection.count_documents(untouched) == 0
    assert [(r["request_id"], r["duration"]) for r in forwarded(stack, "fb-")] == [("fb-1", 17.5)]
    assert metric_value(scrape(stack), "prediction_records_dropped_total") == 0


def test_a_label_that_overtakes_its_prediction_still_lands(label_stack: Stack) -> None:
    stack = label_stack
    settled(stack)
    response = requests.post(f"{stack.url}/feedback", json={"request_id": "early-1", "duration": 8.0}, timeout=5)
    assert response.status_code == 202
    wait_until(lambda: stack.metric("prediction_pending_labels") == 1, 10, "label waiting in the writer")
    predict(stack, "early-1")
    labelled = wait_until(
        lambda: stack.predictions.find_one({"request_id": "early-1", "target": {"$exists": True}}), 15, "label"
    )
    assert labelled["target"] == 8.0
    got = wait_until(lambda: forwarded(stack, "early-"), 10, "forwarded")
    assert [(r["request_id"], r["duration"]) for r in got] == [("early-1", 8.0)]


def test_two_labels_at_once_for_one_id_one_wins_and_only_it_is_forwarded(label_stack: Stack) -> None:
    stack = label_stack
    settled(stack)
    before = feedback_counts(stack)
    pairs = 30
    ids = [f"pair-{i}" for i in range(pairs)]
    for request_id in ids:
        predict(stack, request_id)
    wait_until(lambda: stack.predictions.count_documents({"request_id": {"$in": ids}}) == pairs, 15, "documents")
    statuses: list[int] = []
    superseded_before = metric_value(scrape(stack), "prediction_feedback_total", result="superseded")

    def send(request_id: str, duration: float, barrier: threading.Barrier) -> None:
        barrier.wait()
        # A new connection each, so the two labels often land on different workers.
        response = requests.post(
            f"{stack.url}/feedback",
            json={"request_id": request_id, "duration": duration},
            headers={"Connection": "close"},
            timeout=10,
        )
        statuses.append(response.status_code)

    for request_id in ids:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=send, args=(request_id, d, barrier)) for d in (10.0, 20.0)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
    assert statuses == [202] * (2 * pairs)

    def decided() -> Counter:
        delta = feedback_counts(stack) - before
        superseded = metric_value(scrape(stack), "prediction_feedback_total", result="superseded") - superseded_before
        return Counter(accepted=delta["accepted"] - superseded, lost=delta["duplicate"] + superseded)

    wait_until(lambda: decided() == Counter(accepted=pairs, lost=pairs), 20, "every pair decided: one winner each")
    stored = {d["request_id"]: d["target"] for d in stack.predictions.find({"request_id": {"$in": ids}})}
    assert set(stored) == set(ids) and set(stored.values()) <= {10.0, 20.0}

    # The database's winner is forwarded for every id. A label displaced by an earlier-accepted one is forwarded
    # first and the winner after it (the metrics service's window keeps the earlier-accepted of the two), so
    # wait for the winners themselves: a wait for "every id forwarded once" could end between the two.
    def winners_forwarded() -> list | None:
        sent = forwarded(stack, "pair-")
        by_id: dict[str, set] = {}
        for row in sent:
            by_id.setdefault(row["request_id"], set()).add(row["duration"])
        return sent if all(stored[i] in by_id.get(i, set()) for i in ids) else None

    sent = wait_until(winners_forwarded, 20, "every id's stored label forwarded")
    assert {r["request_id"] for r in sent} == set(ids)
    assert all(r["duration"] in (10.0, 20.0) for r in sent)


def test_the_first_label_answered_202_wins_whichever_worker_writes_first(label_stack: Stack) -> None:
    # The issue: label A answered 202, then label B on a new connection: B was stored for 31 of 100 ids.
    stack = label_stack
    settled(stack)
    ids = [f"seq-{i}" for i in range(100)]
    for start in range(0, len(ids), 50):
        requests.post(
            f"{stack.url}/predict", json=[{**RIDE, "request_id": i} for i in ids[start : start + 50]], timeout=10
        )
    wait_until(lambda: stack.predictions.count_documents({"request_id": {"$in": ids}}) == len(ids), 15, "documents")
    first_sent = {}
    for n, request_id in enumerate(ids):
        # Both orders: half the ids get 10 then 20, half 20 then 10; each on its own connection.
        durations = (10.0, 20.0) if n % 2 == 0 else (20.0, 10.0)
        for duration in durations:
            response = requests.post(
                f"{stack.url}/feedback",
                json={"request_id": request_id, "duration": duration},
                headers={"Connection": "close"},
                timeout=10,
            )
            assert response.status_code == 202
        first_sent[request_id] = durations[0]

    def stored() -> dict:
        return {d["request_id"]: d.get("target") for d in stack.predictions.find({"request_id": {"$in": ids}})}

    settled(stack)
    wait_until(lambda: stored() == first_sent, 20, "the first answered label stored for every id", 0.2)

    # The metrics service's window sees the same winner: the earliest-accepted label forwarded for each id.
    def window_view() -> dict:
        rows = sorted(forwarded(stack, "seq-"), key=lambda r: r["timestamp"])
        view: dict = {}
        for row in rows:
            view.setdefault(row["request_id"], row["duration"])
        return view

    wait_until(lambda: window_view() == first_sent, 10, "forwarded winners")


def test_a_flood_of_labels_for_unknown_ids_leaves_predict_answering(label_stack: Stack) -> None:
    stack = label_stack
    settled(stack)
    stop = threading.Event()
    flood_statuses: Counter = Counter()
    lock = threading.Lock()

    def flood(index: int) -> None:
        session = requests.Session()
        n = 0
        while not stop.is_set():
            body = [{"request_id": f"ghost-{index}-{n}-{k}", "duration": 5.0} for k in range(20)]
            n += 1
            status = session.post(f"{stack.url}/feedback", json=body, timeout=30).status_code
            with lock:
                flood_statuses[status] += 1

    flooders = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(16)]
    for thread in flooders:
        thread.start()
    served: list[str] = []
    failures: list[str] = []
    try:
        wait_until(lambda: sum(flood_statuses.values()) >= 50, 30, "flood under way")
        session = requests.Session()
        for i in range(150):
            request_id = f"flood-{i}"
            response = session.post(f"{stack.url}/predict", json={**RIDE, "request_id": request_id}, timeout=30)
            if response.status_code == 200 and response.json()["request_id"] == request_id:
                served.append(request_id)
            else:
                failures.append(f"{response.status_code} {response.text[:100]}")
    finally:
        stop.set()
        for thread in flooders:
            thread.join(60)
    assert failures == [] and len(served) == 150
    assert set(flood_statuses) <= {202, 503}, flood_statuses  # 503: labels at their share of the queue
    assert flood_statuses[202] > 0
    query = {"request_id": {"$in": served}}
    wait_until(lambda: stack.predictions.count_documents(query) == len(served), 30, "every prediction logged")
    assert stack.predictions.count_documents({"request_id": {"$regex": "^ghost-"}}) == 0
    text = scrape(stack)
    assert metric_value(text, "prediction_records_dropped_total", queue="mongo") == 0
    assert metric_value(text, "prediction_http_requests_total", status="500") == 0


def test_labels_sent_while_mongodb_is_down_are_spooled_and_applied_after_restart(
    service_factory, artifacts_dir: Path, tmp_path: Path, recorder: Recorder
) -> None:
    # The outage outlasts the retry horizon, and rides served during it get labels too, some before their
    # prediction: spooled by two workers, a label can be replayed before its prediction. The horizon counts
    # time waited while MongoDB answered; counted from arrival, such labels were given up at once, lost.
    horizon = {"PREDICTION_LABEL_RETRY_SECONDS": str(HORIZON_SECONDS)}
    stack, port = stack_on_persistent_mongo(service_factory, artifacts_dir, tmp_path, recorder, horizon)
    data_dir, url, mongo = tmp_path / "mongo-data", stack.url, stack.mongo
    close = {"Connection": "close"}  # new connections: both workers take some
    try:
        ids = [f"down-{i}" for i in range(20)]
        for request_id in ids:
            predict(stack, request_id)
        wait_until(lambda: stack.predictions.count_documents({}) == len(ids), 15, "predictions written")
        mongo.stop()
        stopped = time.monotonic()
        labels = [{"request_id": i, "duration": 4.0 + n} for n, i in enumerate(ids)]
        for start in range(0, len(labels), 5):  # several calls, so both workers take some
            response = requests.post(f"{url}/feedback", json=labels[start : start + 5], headers=close, timeout=5)
            assert response.status_code == 202 and response.json()["queued"] == 5
        late = [f"late-{i}" for i in range(10)]
        for n, request_id in enumerate(late):
            label = {"request_id": request_id, "duration": 30.0 + n}
            labels.append(label)
            calls = [("/predict", {**RIDE, "request_id": request_id}), ("/feedback", label)]
            for path, body in calls if n % 2 else calls[::-1]:  # half of them labelled before the prediction
                assert requests.post(f"{url}{path}", json=body, headers=close, timeout=5).status_code in (200, 202)
        wait_until(lambda: stack.metric("prediction_spool_records") > 0, 20, "labels spooled")
        time.sleep(max(0.0, HORIZON_SECONDS + 1 - (time.monotonic() - stopped)))  # the outage outlasts the horizon
        mongo, _ = start_mongo(tmp_path / "mongo", port=port, data_dir=data_dir)
        collection = stack.predictions
        every = len(ids) + len(late)
        wait_until(lambda: collection.count_documents({"target": {"$exists": True}}) == every, 30, "applied")
        stored = {d["request_id"]: d["target"] for d in collection.find({}, {"_id": 0})}
        assert stored == {label["request_id"]: label["duration"] for label in labels}
        sent = wait_until(lambda: len(f := forwarded(stack, "down-")) >= len(ids) and f, 15, "forwarded")
        assert sorted((r["request_id"], r["duration"]) for r in sent) == sorted(
            (k, v) for k, v in stored.items() if k.startswith("down-")
        )
        wait_until(lambda: stack.metric("prediction_spool_records") == 0, 10, "spool drained")
        assert stack.metric("prediction_feedback_total", result="accepted") == every
        assert stack.metric("prediction_feedback_total", result="unknown") == 0
        assert stack.metric("prediction_records_dropped_total") == 0
    finally:
        mongo.stop()
