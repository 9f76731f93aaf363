"""Any model folder served by the real process: a classifier and a regressor built from scikit-learn data.

Wine (classification, string classes, a string category derived from alcohol) and diabetes
(regression, a string category and a datetime), each as an MLflow model folder and as a pickle (the
pickled regressor a HistGradientBoosting, which predicts on an OpenMP thread pool: the master's start
check once hung every forked worker on it), each with the test's own model.yaml and reference: served
with probabilities, logged to MongoDB (nx-27017), forwarded, labelled with the target's name typed by the
task. And the start checks:
a model answering the same for every row, a DictVectorizer of foreign features and a bad
description each stop the start with one line and exit 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from prediction_support import metric_value
from pymongo import MongoClient
from sklearn.dummy import DummyRegressor
from sklearn_models import (
    WINE_CLASSES,
    boosted_diabetes_folder,
    diabetes_folder,
    diabetes_frame,
    foreign_course_pickle,
    row_of,
    wine_folder,
    wine_frame,
)

from local_stack.components import start_mongo, start_prediction_service
from local_stack.processes import wait_until
from local_stack.recorder import Recorder
from monitoring_core.documents import TARGET, predictions_collection

pytestmark = pytest.mark.integration

CASES = [("wine", "pickle"), ("wine", "mlflow"), ("diabetes", "pickle"), ("diabetes", "mlflow")]


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Recorder, Path]]:
    """One nx-27017 and one recording metrics service for the module's services."""
    workdir = tmp_path_factory.mktemp("any_model")
    mongo, uri = start_mongo(workdir / "mongo")
    recorder = Recorder().start()
    yield uri, recorder, workdir
    recorder.stop()
    mongo.stop()


@pytest.fixture(scope="module")
def services(backends) -> Iterator[dict[tuple[str, str], str]]:
    """Each folder of CASES served by its own process (one worker); {(name, kind): url}."""
    uri, recorder, workdir = backends
    make = {"wine": wine_folder, "diabetes": diabetes_folder}
    started, urls = [], {}
    try:
        for name, kind in CASES:
            if (name, kind) == ("diabetes", "pickle"):
                folder = boosted_diabetes_folder(workdir / f"{name}-{kind}")
            else:
                folder = make[name](workdir / f"{name}-{kind}", kind)
            env = {
                "MONGODB_URI": uri,
                "EVIDENTLY_SERVICE_URL": recorder.url,
                "PREDICTION_SPOOL_DIR": str(workdir / f"spool-{name}-{kind}"),
                "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"prom-{name}-{kind}"),
                "PREDICTION_FLUSH_INTERVAL_SECONDS": "0.1",
                "WORKERS": "1",
                "DO_NOT_TRACK": "1",
                # An OpenMP pool whatever the core count (the boosted regressor predicts on one).
                "OMP_NUM_THREADS": "2",
            }
            proc, url = start_prediction_service(workdir / "services", env, model_dir=folder, timeout=120)
            started.append(proc)
            urls[(name, kind)] = url
        yield urls
    finally:
        for proc in started:
            proc.stop()


def _rows(name: str, prefix: str) -> tuple[list[dict], list]:
    frame, target = wine_frame() if name == "wine" else diabetes_frame()
    picks = list(range(0, len(frame), len(frame) // 6))[:6]
    return [{**row_of(frame, i), "request_id": f"{prefix}{i}"} for i in picks], [target.iloc[i] for i in picks]


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_a_model_folder_is_served_logged_forwarded_and_labelled(services, backends, name, kind) -> None:
    uri, recorder, _ = backends
    url = services[(name, kind)]
    prefix = f"{name}-{kind}-"
    rows, truths = _rows(name, prefix)
    response = requests.post(f"{url}/predict", json=rows, timeout=30)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [a["request_id"] for a in answers] == [r["request_id"] for r in rows]
    version = answers[0]["model_version"]
    assert version.startswith("mlflow-" if kind == "mlflow" else "sklearn-")
    classifier = name == "wine"
    for answer in answers:
        if classifier:
            assert answer["prediction"] in WINE_CLASSES and set(answer) == {
                "request_id",
                "prediction",
                "model_version",
                "probabilities",
            }
            assert set(answer["probabilities"]) == set(WINE_CLASSES)
            assert sum(answer["probabilities"].values()) == pytest.approx(1)
        else:
            assert isinstance(answer["prediction"], float) and "probabilities" not in answer
    if classifier:  # a good classifier on its own training rows
        assert sum(a["prediction"] == t for a, t in zip(answers, truths, strict=True)) >= 5

    # Logged to MongoDB under the description's columns.
    collection = predictions_collection(MongoClient(uri, serverSelectionTimeoutMS=3000), "prediction_service")
    ids = [r["request_id"] for r in rows]
    docs = wait_until(
        lambda: (d := list(collection.find({"request_id": {"$in": ids}}, {"_id": 0}))) and len(d) == len(ids) and d,
        timeout=20,
        what="logged documents",
    )
    by_id = {d["request_id"]: d for d in docs}
    for row, answer in zip(rows, answers, strict=True):
        doc = by_id[row["request_id"]]
        assert doc["model_name"] == name and doc["model_version"] == version
        assert doc["prediction"] == answer["prediction"]
        features = {k: v for k, v in row.items() if k != "request_id"}
        assert {k: doc[k] for k in features} == features
        if classifier:
            assert {c: doc[f"proba_{c}"] for c in WINE_CLASSES} == pytest.approx(answer["probabilities"])
    # Forwarded to the metrics service's /iterate/<name> with the same columns.
    forwarded = wait_until(
        lambda: (f := [r for r in recorder.rows(f"/iterate/{name}") if r["request_id"] in ids]) and len(f) == 6 and f,
        timeout=20,
        what="forwarded rows",
    )
    if classifier:
        assert all(f"proba_{c}" in row for row in forwarded for c in WINE_CLASSES)

    # Labels: the target's name, typed by the task.
    target = "cultivar" if classifier else "progression"
    good = [{"request_id": i, target: t if classifier else float(t)} for i, t in zip(ids, truths, strict=True)]
    bad = {target: "merlot"} if classifier else {target: -1.0}  # not a class / below the target's minimum
    wrong = {target: 3.5} if classifier else {target: "many"}
    again = {"request_id": ids[0], target: good[1][target]}  # a second label for one id in the call
    call = requests.post(f"{url}/feedback", json=[*good, again, {"request_id": "w", **wrong}], timeout=10)
    assert call.status_code == 202, call.text
    outcomes = [item["outcome"] for item in call.json()["items"]]
    assert outcomes == ["queued"] * 6 + ["duplicate", "invalid"]
    alone = requests.post(f"{url}/feedback", json={"request_id": "nobody", **bad}, timeout=10)
    assert alone.status_code == 400 and alone.json()["details"][0]["field"] == target
    labelled = wait_until(
        lambda: (
            (d := list(collection.find({"request_id": {"$in": ids}, TARGET: {"$exists": True}}))) and len(d) == 6 and d
        ),
        timeout=20,
        what="labels on the documents",
    )
    stored = {d["request_id"]: d[TARGET] for d in labelled}
    assert stored == {g["request_id"]: g[target] for g in good}
    assert wait_until(
        lambda: len([r for r in recorder.rows(f"/feedback/{name}") if r["request_id"] in ids]) == 6,
        timeout=20,
        what="forwarded labels",
    )
    assert {r[target] for r in recorder.rows(f"/feedback/{name}") if r["request_id"] in ids} == set(stored.values())

    # The API document is the description's.
    doc = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert name in doc["info"]["title"]
    assert target in doc["components"]["schemas"]["Label"]["properties"]
    assert ("probabilities" in doc["components"]["schemas"]["Prediction"]["properties"]) == classifier
    text = requests.get(f"{url}/metrics", timeout=5).text
    assert metric_value(text, "prediction_predictions_total", model=name, model_version=version) >= 6
    if classifier:
        assert metric_value(text, "prediction_predicted_class_total", model=name) >= 6


def _start(folder: Path, workdir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MODEL_DIR": str(folder),
        "PREDICTION_LOG_TO_MONGODB": "false",
        "PREDICTION_FORWARD_TO_METRICS": "false",
        "PREDICTION_SPOOL_DIR": str(workdir / "spool"),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prom"),
        "PORT": "0",
    }
    # A safety bound only: the process exits as soon as the check fails, before gunicorn starts.
    return subprocess.run(
        [sys.executable, "-m", "prediction_service"], env=env, capture_output=True, text=True, timeout=180
    )


def test_a_folder_that_cannot_serve_stops_the_start_with_one_line(tmp_path: Path) -> None:
    frame, target = diabetes_frame()
    bad_description = diabetes_folder(tmp_path / "bad_description")
    text = yaml.safe_load((bad_description / "model.yaml").read_text())
    text["features"][0]["kind"] = "textual"
    (bad_description / "model.yaml").write_text(yaml.safe_dump(text))
    cases = {
        "constant": (
            diabetes_folder(tmp_path / "constant", model=DummyRegressor().fit(frame, target)),
            "model.pkl: it gives the same answer",
        ),
        "foreign_vectorizer": (
            diabetes_folder(tmp_path / "foreign", model=foreign_course_pickle()),
            "model.pkl: its DictVectorizer expects the features ['PU_DO', 'trip_distance']",
        ),
        "bad_description": (bad_description, "model.yaml: features.0.kind:"),
    }
    for name, (folder, phrase) in cases.items():
        done = _start(folder, tmp_path)
        assert done.returncode == 2, (name, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.startswith("prediction_service:")]
        assert len(lines) == 1 and str(folder) in lines[0] and phrase in lines[0], (name, lines)
        assert "Traceback" not in done.stderr and "Booting worker" not in done.stderr, name
