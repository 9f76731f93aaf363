"""/metrics: exactly the catalogue's names and labels, no verdict below the minimums, no stale label sets."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml
from evidently_support import model_folder, rows_of, wine_classifier
from prometheus_client.parser import text_string_to_metric_families

from monitoring_core.estimation import prepare_estimator
from monitoring_core.model_folder import load_model_folder
from ride_duration.synthetic import DriftParams

CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def _catalogue() -> dict[str, set[str]]:
    """Return {metric name: label names} of the evidently_service table in docs/metrics.md."""
    section = CATALOGUE.read_text().split("## evidently_service", 1)[1].split("\n## ", 1)[0]
    names = {}
    for match in re.finditer(r"^\| `(evidently_\w+)` \| \w[^|]* \| ([^|]*) \|", section, re.MULTILINE):
        names[match.group(1)] = set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", match.group(2))))
    return names


def _exported(text: str) -> dict[str, set[str]]:
    exported: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removesuffix("_created")
            exported.setdefault(name, set()).update(sample.labels)
    return exported


def test_every_catalogued_metric_is_exported_with_its_labels(make_app, make_rows, monitor_of, artifacts_dir, tmp_path):
    # The taxi regressor and a classifier side by side: some metrics are a classifier's only.
    models = tmp_path / "models"
    model_folder(models, artifacts_dir / "reference.parquet")
    _, wine = wine_classifier(models)
    # The quality estimate is exported for a model whose folder has a prepared estimator.
    prepare_estimator(load_model_folder(models / "ride_duration"))
    # The wine data has 178 rows, fewer than an estimator fits on: its reference three times over is enough
    # to export the classifier's estimated metrics (what is checked here is their names and labels).
    reference = pd.read_parquet(models / "wine" / "reference.parquet")
    pd.concat([reference] * 3, ignore_index=True).to_parquet(models / "wine" / "reference.parquet", index=False)
    prepare_estimator(load_model_folder(models / "wine"))
    app = make_app(models_dir=models, segment_min_rows=100, segment_min_labelled_rows=20)
    client = app.test_client()
    rows, labels = make_rows(1000, seed=51, drift=DriftParams(missing_share=0.1))
    rows[0]["unknown_fields"] = ["VendorID"]  # a whole TLC row was served: its extra column's name
    client.post("/iterate/ride_duration", json=rows + [{"request_id": "bad"}])
    client.post("/feedback/ride_duration", json=labels)
    wine_rows, wine_labels = rows_of(wine, yaml.safe_load((models / "wine" / "model.yaml").read_text()), "w")
    client.post("/iterate/wine", json=wine_rows)
    client.post("/feedback/wine", json=wine_labels)
    monitor_of(app).evaluate()
    monitor_of(app, "wine").evaluate()
    exported = _exported(client.get("/metrics").text)
    catalogue = _catalogue()
    assert catalogue, "no evidently_service table found in docs/metrics.md"
    for name, labels_ in catalogue.items():
        assert name in exported, f"{name} is catalogued but not exported"
        assert exported[name] == labels_, name
    uncatalogued = set(exported) - set(catalogue)
    assert not uncatalogued, f"exported but not in docs/metrics.md: {sorted(uncatalogued)}"


def test_below_the_minimum_only_counts_and_timestamps_are_exported(make_app, make_rows, monitor_of):
    app = make_app(min_rows=500, min_labelled_rows=100)
    client = app.test_client()
    rows, labels = make_rows(50, seed=52)
    client.post("/iterate/ride_duration", json=rows)
    client.post("/feedback/ride_duration", json=labels)
    monitor_of(app).evaluate()
    exported = _exported(client.get("/metrics").text)
    for absent in (
        "evidently_dataset_drift",
        "evidently_feature_drift_score",
        "evidently_feature_drift_detected",
        "evidently_model_quality",
        "evidently_feature_missing_share",
    ):
        assert absent not in exported, absent
    for present in (
        "evidently_window_rows",
        "evidently_window_min_rows",
        "evidently_last_evaluation_timestamp_seconds",
        "evidently_labelled_rows",
        "evidently_label_coverage",
    ):
        assert present in exported, present


def test_window_rows_is_live_and_the_result_swaps_whole(make_app, make_rows, monitor_of):
    app = make_app()
    client = app.test_client()
    client.post("/iterate/ride_duration", json=make_rows(600, seed=53)[0])
    monitor_of(app).evaluate()
    client.post("/iterate/ride_duration", json=make_rows(10, seed=54)[0])
    text = client.get("/metrics").text
    assert 'evidently_window_rows{model="ride_duration"} 610.0' in text  # live
    assert 'evidently_labelled_rows{model="ride_duration"} 0.0' in text  # from the last evaluation


def test_an_empty_window_evaluates_to_counts_only(make_app, monitor_of):
    app = make_app()
    result = monitor_of(app).evaluate()
    assert (result.window_rows, result.drift, result.model_quality, result.segments) == (0, None, None, {})
    exported = _exported(app.test_client().get("/metrics").text)
    assert "evidently_window_rows" in exported and "evidently_feature_drift_score" not in exported


def test_a_non_finite_value_is_left_out_rather_than_exported() -> None:
    from evidently_service.collector import _Families

    families = _Families("; recomputed every 2 s")
    families.quality.add_metric(["ride_duration", "rmse"], float("inf"))
    families.quality.add_metric(["ride_duration", "mae"], float("nan"))
    families.quality.add_metric(["ride_duration", "mean_error"], 1.5)
    families.coverage.add_metric(["ride_duration"], float("-inf"))
    exported = {f.name: [(s.labels.get("metric"), s.value) for s in f.samples] for f in families.all()}
    assert exported["evidently_model_quality"] == [("mean_error", 1.5)]
    assert exported["evidently_label_coverage"] == []


def test_confusion_counts_of_many_classes_are_bounded_by_classes_and_rows() -> None:
    # Hostile probe: a 50-class model would export 2,500 confusion series, nearly all 0.
    from evidently_service.collector import DENSE_CONFUSION_CLASSES, _Families
    from evidently_service.quality import classification_quality

    def series(classes: tuple[str, ...], actual: list[str], predicted: list[str]) -> list[dict]:
        families = _Families("")
        families.add_model_quality("m", classification_quality(classes, actual, predicted))
        return [s.labels for f in families.all() if f.name == "evidently_confusion_rows" for s in f.samples]

    few = tuple(f"c{i}" for i in range(DENSE_CONFUSION_CLASSES))
    assert len(series(few, ["c0", "c1"], ["c0", "c2"])) == len(few) ** 2  # every cell, 0s included
    many = tuple(f"c{i:02d}" for i in range(50))
    exported = series(many, ["c00", "c01", "c01"], ["c00", "c02", "c02"])
    assert len(exported) == 50 + 1  # the diagonal and the one off-diagonal cell with rows
    assert {"model": "m", "actual": "c01", "predicted": "c02"} in exported
