"""The flow monitors every model folder of MODELS_DIR, whatever its task: models built here from scikit-learn data.

A regressor (diabetes progression, in points), a 3-class classifier with probabilities (wine) and a
binary classifier with text classes (breast cancer) are written as model folders in a temporary
MODELS_DIR; their held-out rows are logged to nx-27017 as the prediction service logs them, most
with their label; one flow run reports on all three.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from batch_sklearn_models import cancer_classifier, diabetes_regressor, wine_classifier
from pymongo import MongoClient

from local_stack.components import start_mongo
from local_stack.logged_predictions import insert_documents, logged_documents
from monitoring_core.documents import TARGET
from monitoring_core.estimation import prepare_estimator

pytestmark = pytest.mark.integration

DB = "prediction_service"
START = datetime(2026, 2, 2, 9, tzinfo=UTC)
END = START + timedelta(hours=1)
# The next hour, wine only: its traffic has no row of class 2, so Evidently cannot build the quality report.
LATER = (END, END + timedelta(hours=1))
# References of 110-350 rows are too small for the drift calibration: these models use the pinned thresholds.
CONFIG = "defaults:\n  calibration: {enabled: false}\n  min_labelled_rows: 20\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory, prefect_env):
    """Build three model folders, log their held-out rows, run the flow once over all of them."""
    work = tmp_path_factory.mktemp("any-model")
    models = {m.folder.name: m for m in (diabetes_regressor(work / "models"), wine_classifier(work / "models"))}
    models["cancer"] = cancer_classifier(work / "models")
    # Quality estimators for the regressor and the binary classifier; wine's 110 reference rows are too few,
    # so its folder stays unprepared and its reports must say so instead of failing.
    for name in ("diabetes", "cancer"):
        prepare_estimator(models[name].folder)
    (work / "monitoring.yaml").write_text(CONFIG)
    docs = []
    for seed, model in enumerate(models.values()):
        description = model.folder.description
        docs += logged_documents(
            description, model.held_out, START, END, label_share=0.85, seed=seed, id_prefix=f"{description.name}-"
        )
    wine = models["wine"]
    two_classes = wine.held_out[wine.held_out["cultivar"] != 2]
    docs += logged_documents(wine.folder.description, two_classes, *LATER, id_prefix="later-", seed=9)
    proc, uri = start_mongo(work / "mongo")
    try:
        insert_documents(uri, DB, docs)
        env = {
            "MONGODB_URI": uri,
            "MONGODB_DATABASE": DB,
            "MODELS_DIR": str(work / "models"),
            "EVIDENTLY_CONFIG": str(work / "monitoring.yaml"),
            "REPORTS_DIR": str(work / "reports"),
            "PUSHGATEWAY_URL": "",
        }
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            from prefect_flows.batch_monitoring import batch_monitoring

            summaries = batch_monitoring(START, END)
            later = batch_monitoring(*LATER, model_name="wine")
        yield {"models": models, "docs": docs, "summaries": summaries, "later": later, "work": work, "uri": uri}
    finally:
        proc.stop()


def _labelled(run, name: str) -> pd.DataFrame:
    """Return the logged documents of one model in the first hour that carry a label."""
    rows = [d for d in run["docs"] if d["model_name"] == name and d["timestamp"] < END and TARGET in d]
    return pd.DataFrame(rows)


def test_every_model_folder_is_monitored_in_one_run(run):
    summaries = run["summaries"]
    assert set(summaries) == {"diabetes", "wine", "cancer"}
    for name, summary in summaries.items():
        assert summary["status"] == "ok", summary["message"]
        assert summary["task"] == run["models"][name].folder.description.task.value
        assert summary["rows"]["period"] == len(run["models"][name].held_out)
        assert set(summary["reports"]) == {"drift", "data_summary", "quality"}, name
        for paths in summary["reports"].values():
            assert (run["work"] / "reports" / paths["html"]).stat().st_size > 100_000
            assert (run["work"] / "reports" / paths["json"]).exists()
        # The drift verdicts cover what the description monitors: features, prediction, class probabilities.
        assert set(summary["drift"]["columns"]) == set(run["models"][name].folder.description.drift_tests())
        # Calibration is off here, so every feature has a verdict (its pinned threshold).
        features = [f.name for f in run["models"][name].folder.description.monitored_features]
        assert summary["drift"]["judged_features"] == list(features) and summary["drift"]["unjudged_features"] == []
    index = (run["work"] / "reports" / "index.html").read_text()
    assert all(f"{s['run_id']}/summary.json" in index for s in summaries.values())


def test_regression_quality_joins_the_labels_in_the_targets_unit(run):
    summary = run["summaries"]["diabetes"]
    labelled = _labelled(run, "diabetes")
    error = labelled["prediction"] - labelled[TARGET]
    quality = summary["quality"]
    assert quality["labelled_rows"] == summary["rows"]["labelled"] == len(labelled)
    assert quality["rmse"] == pytest.approx(math.sqrt((error**2).mean()))
    assert quality["mae"] == pytest.approx(error.abs().mean())
    assert {s["segment"] for s in quality["segments"]} <= {"<40", "40-60", "60+"} and quality["segments"]
    assert f"RMSE {quality['rmse']:.2f} points" in summary["message"] and " min" not in summary["message"]


@pytest.mark.parametrize("name", ["wine", "cancer"])
def test_classification_quality_has_the_tasks_metrics(run, name):
    from sklearn.metrics import accuracy_score, f1_score

    summary = run["summaries"][name]
    description = run["models"][name].folder.description
    labelled = _labelled(run, name)
    quality = summary["quality"]
    assert quality["labelled_rows"] == len(labelled)
    assert quality["accuracy"] == pytest.approx(accuracy_score(labelled[TARGET], labelled["prediction"]))
    assert quality["f1_macro"] == pytest.approx(f1_score(labelled[TARGET], labelled["prediction"], average="macro"))
    assert set(quality) >= {"precision_macro", "recall_macro", "log_loss", "brier"}
    assert set(quality["classes"]) == set(description.class_keys)
    assert "rmse" not in quality and f"accuracy {quality['accuracy']:.3f}" in summary["message"]
    # Evidently's own report, built with the classification data definition, agrees on the accuracy.
    report = json.loads((run["work"] / "reports" / summary["reports"]["quality"]["json"]).read_text())
    accuracy = [m["value"] for m in report["metrics"] if m["config"]["type"].endswith(":Accuracy")]
    assert accuracy == [pytest.approx(quality["accuracy"])]
    page = (run["work"] / "reports" / summary["reports"]["data_summary"]["html"]).read_text()
    assert "categorical (the classes)" in page and f"target {description.target_column} and prediction" in page


def test_drift_scores_equal_the_online_evaluator(run):
    """Parity for a classifier: text classes and probability columns scored as DriftEvaluator scores them."""
    from monitoring_core.drift import DriftEvaluator
    from prefect_flows.io_mongo import read_predictions
    from prefect_flows.period import Period

    folder = run["models"]["cancer"].folder
    with MongoClient(run["uri"], tz_aware=True) as client:
        rows = read_predictions(client, DB, folder.description, Period(START, END))
    assert rows["prediction"].map(type).eq(str).all() and rows["size"].map(type).eq(str).all()
    online = DriftEvaluator(folder.description, pd.read_parquet(folder.reference_path)).evaluate(rows)
    batch = run["summaries"]["cancer"]["drift"]
    for column, result in online.columns.items():
        assert batch["columns"][column]["score"] == pytest.approx(result.score, abs=1e-9), column
        assert batch["columns"][column]["detected"] == result.detected, column
    assert batch["dataset_drift"] == online.dataset_drift


def test_a_class_missing_from_the_period_keeps_the_numbers_without_evidentlys_report(run):
    summary = run["later"]["wine"]
    assert set(run["later"]) == {"wine"}  # --model NAME: that model only
    assert summary["status"] == "ok" and summary["quality"]["available"] is True
    assert "quality" not in summary["reports"] and "no quality report" in summary["quality"]["report_note"]
    assert summary["quality"]["classes"]["2"]["support"] == 0


def test_the_workspace_has_a_project_per_model_with_its_tasks_panels(run):
    from evidently.ui.workspace import Workspace

    summaries = run["summaries"]
    workspace = Workspace(summaries["wine"]["workspace"]["path"])
    panels = {}
    for name, summary in summaries.items():
        project = workspace.get_project(summary["workspace"]["project_id"])
        assert project.name == name
        panels[name] = [p.title for p in workspace.get_dashboard(project.id).panels]
    assert panels["diabetes"][-1] == "Regression quality (points)"
    assert panels["wine"][-1] == panels["cancer"][-1] == "Classification quality"


@pytest.mark.parametrize(
    ("name", "metric", "segment"), [("diabetes", "rmse", "age_band"), ("cancer", "accuracy", "tumour_size")]
)
def test_estimated_and_realised_quality_per_period_and_segment_with_the_gap(run, name, metric, segment):
    summary = run["summaries"][name]
    estimation, quality = summary["estimation"], summary["quality"]
    assert estimation["available"] and estimation["level"] == 0.9 and "concept drift" in estimation["limit"]
    period = estimation["period"]
    assert period["rows"] == summary["rows"]["analysed"] and period["labelled_rows"] == quality["labelled_rows"]
    values = period["metrics"][metric]
    assert values["low"] <= values["estimated"] <= values["high"]
    # Realised over the labelled rows, compared with the estimate of those same rows.
    assert values["realised"] == pytest.approx(quality[metric])
    assert values["gap"] == pytest.approx(values["realised"] - values["labelled_estimated"])
    assert values["outside_band"] == (not values["labelled_low"] <= values["realised"] <= values["labelled_high"])
    # Per segment: every segment's rows estimated; the well-labelled ones realised too.
    segments = {s["segment"]: s for s in estimation["segments"]}
    assert sum(s["rows"] for s in segments.values()) == period["rows"]
    assert {s["segment"] for s in quality["segments"]} <= set(segments)
    assert any("gap" in s["metrics"][metric] for s in segments.values())
    reports = run["work"] / "reports"
    page = (reports / estimation["html"]).read_text()
    assert f"{segment} = " in page and "gap (realised" in page and "cannot see pure concept drift" in page
    index = (reports / "index.html").read_text()
    assert estimation["html"] in index and f"estimated {'RMSE' if metric == 'rmse' else 'accuracy'}" in index
    drift_page = (reports / summary["reports"]["drift"]["html"]).read_text()
    assert "Quality estimated before labels (90% band" in drift_page


def test_a_model_folder_without_an_estimator_says_so_instead_of_failing(run):
    summary = run["summaries"]["wine"]
    assert summary["status"] == "ok" and summary["quality"]["available"]
    assert summary["estimation"]["available"] is False and "monitoring_core.prepare" in summary["estimation"]["reason"]
    page = (run["work"] / "reports" / summary["estimation"]["html"]).read_text()
    assert "No estimate for this run" in page and "monitoring_core.prepare" in page
