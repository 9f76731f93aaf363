"""Any model folder is monitored: a classifier and a regressor built here from scikit-learn data, in the real process.

The folders are prepared by the real `prepare` command, the service runs as `python -m evidently_service`
with MODELS_DIR, and every check reads its /metrics and /health.
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
from evidently_support import diabetes_regressor, rows_of, wine_classifier, write_folder
from prometheus_client.parser import text_string_to_metric_families

from local_stack.components import start_service
from local_stack.processes import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = {"defaults": {"window_size": 400, "evaluation_period_seconds": 0.3, "min_labelled_rows": 50}}


def _command(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("any_model")
    models = root / "models"
    _, wine = wine_classifier(models)
    _, diabetes = diabetes_regressor(models)
    diabetes_regressor(models, rows=24)  # too small to calibrate drift at any window size
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    prepared = _command("monitoring_core.prepare", "--all", str(models), "--config", str(config))
    proc, url = start_service(
        "evidently_service", root / "logs", {"MODELS_DIR": str(models), "EVIDENTLY_CONFIG": str(config)}, timeout=120
    )
    yield {"models": models, "url": url, "proc": proc, "prepared": prepared, "wine": wine, "diabetes": diabetes}
    proc.stop()


def _samples(url: str) -> list:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _value(url: str, name: str, **labels: str) -> float | None:
    for sample in _samples(url):
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


def _description(models: Path, name: str) -> dict:
    return yaml.safe_load((models / name / "model.yaml").read_text())


def test_prepare_checks_and_calibrates_every_folder(stack) -> None:
    done = stack["prepared"]
    assert done.returncode == 0, done.stderr
    assert "wine: wrote" in done.stdout and "diabetes: wrote" in done.stdout
    assert "reference too small for a verdict" in done.stdout  # the 24-row reference says so
    for name in ("wine", "diabetes", "diabetes_24"):
        assert (stack["models"] / name / "prepared" / "calibration.json").is_file()


def test_health_names_each_model_its_task_and_the_prepared_calibration(stack) -> None:
    models = requests.get(f"{stack['url']}/health", timeout=10).json()["models"]
    assert set(models) == {"wine", "diabetes", "diabetes_24"}
    assert models["wine"]["task"] == "classification" and models["diabetes"]["task"] == "regression"
    assert all(m["calibration_prepared"] for m in models.values())
    assert models["diabetes_24"]["reference_too_small"]["bmi"] is True
    assert models["diabetes"]["reference_too_small"] == dict.fromkeys(["age", "bmi", "bp", "s5", "sex"], False)


def test_a_classifier_exports_its_quality_per_class_and_its_confusion_rows(stack) -> None:
    url, wine = stack["url"], stack["wine"]
    rows, labels = rows_of(wine, _description(stack["models"], "wine"), "wine")
    assert requests.post(f"{url}/iterate/wine", json=rows, timeout=10).json()["accepted"] == len(rows)
    answer = requests.post(f"{url}/feedback/wine", json=labels, timeout=10).json()
    assert answer["matched"] == len(labels)
    accuracy = wait_until(
        lambda: _value(url, "evidently_model_quality", model="wine", metric="accuracy"), 30, "wine accuracy"
    )
    assert accuracy == pytest.approx((wine["prediction"] == wine["cultivar"]).mean())
    samples = _samples(url)
    metrics = {
        s.labels["metric"] for s in samples if s.name == "evidently_model_quality" and s.labels["model"] == "wine"
    }
    assert metrics == {"accuracy", "f1_macro", "precision_macro", "recall_macro", "log_loss", "brier"}
    per_class = {(s.labels["class"], s.labels["metric"]) for s in samples if s.name == "evidently_class_quality"}
    assert per_class == {(c, m) for c in ("barolo", "grignolino", "barbera") for m in ("precision", "recall", "f1")}
    confusion = [s for s in samples if s.name == "evidently_confusion_rows" and s.labels["model"] == "wine"]
    assert len(confusion) == 9 and sum(s.value for s in confusion) == len(wine)
    assert _value(url, "evidently_model_quality_threshold", model="wine", metric="accuracy", bound="min") == 0.8
    assert _value(url, "evidently_model_quality_threshold", model="wine", metric="log_loss", bound="max") == 0.7
    assert _value(url, "evidently_model_task_info", model="wine", task="classification") == 1
    # The predicted class drifts as a category (calibrated on 178 rows); the probability columns are tested
    # as numbers, which 178 reference rows are too few to calibrate, like the numerical features.
    judged = {
        s.labels["feature"]
        for s in samples
        if s.name == "evidently_feature_drift_min_rows" and s.labels["model"] == "wine"
    }
    assert {"prediction", "hue_band"} <= judged and "prob_barolo" not in judged
    too_small = {
        s.labels["feature"]: s.value
        for s in samples
        if s.name == "evidently_reference_too_small" and s.labels["model"] == "wine"
    }
    assert set(too_small) == {"alcohol", "malic_acid", "color_intensity", "proline", "hue_band"}
    assert too_small["hue_band"] == 0


def test_a_class_outside_the_description_is_refused(stack) -> None:
    url = stack["url"]
    rows, labels = rows_of(stack["wine"].head(1), _description(stack["models"], "wine"), "odd")
    rows[0]["prediction"] = "merlot"
    answer = requests.post(f"{url}/iterate/wine", json=rows, timeout=10)
    assert answer.status_code == 400 and answer.json()["details"][0]["field"] == "[0].prediction"
    labels[0]["cultivar"] = "merlot"
    assert requests.post(f"{url}/feedback/wine", json=labels, timeout=10).status_code == 400


def test_a_regressor_exports_its_errors_and_drift_with_its_model_label(stack) -> None:
    url, diabetes = stack["url"], stack["diabetes"]
    rows, labels = rows_of(diabetes, _description(stack["models"], "diabetes"), "dia")
    requests.post(f"{url}/iterate/diabetes", json=rows, timeout=10)
    requests.post(f"{url}/feedback/diabetes", json=labels, timeout=10)
    wait_until(lambda: _value(url, "evidently_dataset_drift", model="diabetes") is not None, 30, "diabetes verdict")
    window = diabetes.tail(400)  # the window keeps the newest 400 rows
    rmse = ((window["prediction"] - window["progression"]) ** 2).mean() ** 0.5
    wait_until(lambda: _value(url, "evidently_labelled_rows", model="diabetes") == 400, 30, "labels evaluated")
    assert _value(url, "evidently_model_quality", model="diabetes", metric="rmse") == pytest.approx(rmse)
    assert _value(url, "evidently_model_quality_threshold", model="diabetes", metric="rmse", bound="max") == 70
    assert _value(url, "evidently_model_task_info", model="diabetes", task="regression") == 1
    assert _value(url, "evidently_feature_new_category_share", model="diabetes", feature="sex") == 0
    assert _value(url, "evidently_segment_window_rows", model="diabetes", segment="one") > 0
    assert _value(url, "evidently_model_quality", model="wine", metric="rmse") is None


def test_the_quality_estimate_is_exported_beside_the_realised_one(stack) -> None:
    # prepare fitted the regressor's estimator (442 reference rows); the window of the test above holds 400
    # labelled rows: the estimate covers every row, the gap compares it with what those rows realised.
    url = stack["url"]
    assert "diabetes: wrote" in stack["prepared"].stdout and "estimator.joblib" in stack["prepared"].stdout
    assert _value(url, "evidently_estimation_available", model="diabetes") == 1
    assert _value(url, "evidently_estimation_available", model="diabetes_24") == 0  # too few rows: says so
    health = requests.get(f"{url}/health", timeout=10).json()["models"]
    assert health["diabetes"]["quality_estimate"] == {"available": True, "reason": None}
    # prepare wrote why (not "run the prepare command", which was run).
    assert "the reference has 24 labelled rows" in health["diabetes_24"]["quality_estimate"]["reason"]
    estimated = wait_until(
        lambda: _value(url, "evidently_estimated_model_quality", model="diabetes", metric="rmse"), 30, "estimate"
    )
    low = _value(url, "evidently_estimated_model_quality_low", model="diabetes", metric="rmse")
    high = _value(url, "evidently_estimated_model_quality_high", model="diabetes", metric="rmse")
    realised = _value(url, "evidently_model_quality", model="diabetes", metric="rmse")
    assert low < estimated < high and _value(url, "evidently_estimated_rows", model="diabetes") == 400
    # Clean rows from the reference's own distribution: the realised RMSE is near the estimate.
    assert abs(realised - estimated) < 0.25 * realised
    gap = _value(url, "evidently_estimation_gap", model="diabetes", metric="rmse")
    assert gap is not None and _value(url, "evidently_estimation_outside_band", model="diabetes", metric="rmse") in (
        0,
        1,
    )


def test_a_reference_too_small_says_so_in_the_metrics_and_the_log(stack) -> None:
    url = stack["url"]
    assert _value(url, "evidently_reference_too_small", model="diabetes_24", feature="bmi") == 1
    assert _value(url, "evidently_reference_too_small", model="diabetes", feature="bmi") == 0
    log = stack["proc"].log_path.read_text()
    assert "reference too small to calibrate drift of" in log and "bmi: needs > 24" in log


def test_an_unknown_model_gets_the_contract_404(stack) -> None:
    answer = requests.post(f"{stack['url']}/iterate/nope", json=[{}], timeout=10)
    assert answer.status_code == 404
    assert answer.json()["known_models"] == ["diabetes", "diabetes_24", "wine"]


def test_a_folder_added_since_the_start_is_monitored_from_its_first_rows(stack) -> None:
    """README: "the metrics service monitors every folder of models/". One added while it ran got a 404 for
    every row its prediction service forwarded (dropped after retries, the service's /health saying ok)."""
    url, models, diabetes = stack["url"], stack["models"], stack["diabetes"]
    description = {**_description(models, "diabetes"), "name": "diabetes_added"}
    write_folder(models, description, diabetes)
    rows, labels = rows_of(diabetes.head(250), description, "added")
    # The look at the folder is rate-limited (a 404 test may have just scanned): retried as the forwarder does.
    wait_until(
        lambda: requests.post(f"{url}/iterate/diabetes_added", json=rows, timeout=30).status_code == 200,
        10,
        "rows of the added model taken",
    )
    assert requests.post(f"{url}/feedback/diabetes_added", json=labels, timeout=10).status_code == 200
    wait_until(lambda: _value(url, "evidently_window_rows", model="diabetes_added") == 250, 30, "added model's window")
    assert _value(url, "evidently_model_task_info", model="diabetes_added", task="regression") == 1
    health = requests.get(f"{url}/health", timeout=10).json()["models"]
    assert health["diabetes_added"]["reference_rows"] == len(diabetes)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d, f: d.update(task="regresion"), "model.yaml: task: Input should be 'regression' or 'classification'"),
        (lambda d, f: d["features"].append({"name": "ghost", "kind": "numerical"}), "column 'ghost': described"),
        (lambda d, f: f.__setitem__("bmi", "x"), "column 'bmi': numerical float but dtype object"),
        (lambda d, f: d.update(alerts={"accuracy": {"min": 0.5}}), "alerts: unknown metric 'accuracy'"),
    ],
    ids=["bad task", "column absent", "bad dtype", "unknown alert metric"],
)
def test_a_bad_folder_stops_the_start_with_one_line(tmp_path, breakage, message) -> None:
    folder, frame = diabetes_regressor(tmp_path / "good")
    description = _description(tmp_path / "good", "diabetes")
    breakage(description, frame)
    write_folder(tmp_path / "models", description, frame)
    done = _command("evidently_service", env={"MODELS_DIR": str(tmp_path / "models"), "PORT": "0"})
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("evidently_service: ") and message in line, line
    assert str(tmp_path / "models" / "diabetes") in line
    prepared = _command("monitoring_core.prepare", str(tmp_path / "models" / "diabetes"))
    assert prepared.returncode == 2 and message in prepared.stderr and "Traceback" not in prepared.stderr
