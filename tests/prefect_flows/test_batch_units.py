"""Pure parts of the batch flow: periods, settings, sampling, summaries on disk and the index page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefect_flows.columns import logged_fields
from prefect_flows.index_page import render_index, write_index
from prefect_flows.io_mongo import period_filter, projection, sample_rows, sampling_seed
from prefect_flows.period import Period, parse_utc
from prefect_flows.publish import read_summaries, run_id, write_summary
from prefect_flows.settings import BatchSettings
from ride_duration.schema import DESCRIPTION, MONITORED_FIELDS, PREDICTION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-05T10:00:00Z", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("2026-01-05T10:00:00", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("2026-01-05T12:00:00+02:00", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("2026-01-05", datetime(2026, 1, 5, tzinfo=UTC)),
    ],
)
def test_parse_utc(text, expected):
    assert parse_utc(text) == expected


def test_default_period_is_the_previous_full_hour():
    now = datetime(2026, 1, 5, 10, 7, 30, tzinfo=UTC)
    assert Period.resolve(None, None, now=now) == Period(datetime(2026, 1, 5, 9), datetime(2026, 1, 5, 10))


def test_one_bound_gives_an_hour_and_bad_order_is_refused():
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert Period.resolve(start, None).end == start + timedelta(hours=1)
    assert Period.resolve(None, "2026-01-05T10:00:00Z").start == start
    with pytest.raises(ValueError, match="must be after its start"):
        Period.resolve("2026-01-05T10:00:00Z", "2026-01-05T09:00:00Z")


def test_period_slug_names_model_and_period_in_files():
    period = Period(datetime(2026, 1, 5, 9, tzinfo=timezone(timedelta(hours=-1))), datetime(2026, 1, 5, 11, tzinfo=UTC))
    assert run_id("ride_duration", period.slug) == "ride_duration_20260105T100000Z-20260105T110000Z"


def test_settings_from_env_and_bad_values():
    settings = BatchSettings.from_env({"MONGODB_URI": "mongodb://h:1", "REPORTS_DIR": "/r", "BATCH_MAX_ROWS": "7"})
    assert settings.mongodb_uri == "mongodb://h:1" and settings.max_rows == 7
    assert str(settings.workspace) == "/r/workspace"
    assert BatchSettings.from_env({}).mongodb_database == "prediction_service"
    assert str(BatchSettings.from_env({"EVIDENTLY_WORKSPACE": "/w"}).workspace) == "/w"
    with pytest.raises(ValueError, match="BATCH_MIN_ROWS must be an integer"):
        BatchSettings.from_env({"BATCH_MIN_ROWS": "many"})
    with pytest.raises(ValueError, match="BATCH_MAX_ROWS must be >= 1"):
        BatchSettings.from_env({"BATCH_MAX_ROWS": "0"})


def test_projection_reads_only_what_the_reports_use():
    fields = set(projection(DESCRIPTION)) - {"_id"}
    assert fields == set(logged_fields(DESCRIPTION))
    expected = {PREDICTION, "target", "model_version", "request_id", "timestamp", "lpep_pickup_datetime"}
    assert {f.name for f in MONITORED_FIELDS} | expected == fields
    assert projection(DESCRIPTION)["_id"] == 0
    query = period_filter("m", Period(datetime(2026, 1, 1), datetime(2026, 1, 2)))
    assert query["model_name"] == "m" and set(query["timestamp"]) == {"$gte", "$lt"}


def test_sampling_is_seeded_uniform_and_keeps_order():
    frame = pd.DataFrame({"i": np.arange(1000)})
    same, info = sample_rows(frame, 1000, seed=1)
    assert same is frame and not info.applied
    first, info = sample_rows(frame, 100, seed=1)
    again, _ = sample_rows(frame, 100, seed=1)
    other, _ = sample_rows(frame, 100, seed=2)
    assert info.applied and info.period_rows == 1000 and info.analysed_rows == 100
    assert first["i"].tolist() == again["i"].tolist() != other["i"].tolist()
    assert first["i"].is_monotonic_increasing and first["i"].is_unique
    period = Period(datetime(2026, 1, 1), datetime(2026, 1, 2))
    assert sampling_seed("m", period) == sampling_seed("m", period) != sampling_seed("n", period)


def _summary(rid: str, start: str, end: str, status: str = "ok", drift: bool = False) -> dict:
    verdict = {"dataset_drift": drift, "drifted_features": ["trip_distance"] if drift else []}
    return {
        "run_id": rid,
        "model_name": "ride_duration",
        "period": {"start": start, "end": end},
        "generated_at": "2026-01-06T00:00:00+00:00",
        "status": status,
        "message": "not enough data: 3 rows in the period, at least 50 needed" if status != "ok" else "fine",
        "rows": {"period": 3, "analysed": 3, "labelled": 0},
        "label_coverage": 0.0,
        "sampling": {"applied": False},
        "reports": {"drift": {"html": f"{rid}/{rid}_drift.html"}} if status == "ok" else {},
        "drift": verdict if status == "ok" else None,
        "quality": {"available": False, "reason": "no ground truth in this period"},
    }


def test_index_lists_runs_newest_period_first_with_verdicts(tmp_path):
    write_summary(tmp_path, _summary("a", "2026-01-05T09:00:00+00:00", "2026-01-05T10:00:00+00:00", drift=True))
    write_summary(tmp_path, _summary("c", "2026-01-05T11:00:00+00:00", "2026-01-05T12:00:00+00:00", "not_enough_data"))
    write_summary(tmp_path, _summary("b", "2026-01-05T10:00:00+00:00", "2026-01-05T11:00:00+00:00"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("{")  # one damaged run must not hide the others
    assert [s["run_id"] for s in read_summaries(tmp_path)] == ["c", "b", "a"]
    text = write_index(tmp_path).read_text()
    assert text.index("c/summary.json") < text.index("b/summary.json") < text.index("a/summary.json")
    assert "DATASET DRIFT (trip_distance)" in text and "not enough data: 3 rows" in text
    assert 'href="a/a_drift.html"' in text


def test_index_escapes_what_it_shows():
    summary = _summary("<x>", "2026-01-05T09:00:00+00:00", "2026-01-05T10:00:00+00:00")
    summary["model_name"] = "<script>"
    text = render_index([summary])
    assert "<script>" not in text.split("<body>")[1] and "&lt;script&gt;" in text


def _samples(registry) -> dict[str, float]:
    return {s.name: s.value for family in registry.collect() for s in family.samples}


@pytest.mark.parametrize(
    ("drift", "expected"),
    [
        ({"dataset_drift": True}, 1.0),
        ({"dataset_drift": False}, 0.0),
        (None, None),
        # A reference too small for any feature's verdict: no verdict, not "no drift".
        ({"dataset_drift": False, "judged_features": [], "unjudged_features": ["x"]}, None),
    ],
)
def test_success_metrics_carry_the_verdict_and_omit_it_without_enough_data(drift, expected):
    from prefect_flows.run_metrics import success_registry

    samples = _samples(success_registry({"rows": {"period": 600}, "drift": drift}, started=100.0, finished=130.5))
    assert samples["batch_monitoring_last_success_timestamp_seconds"] == 130.5
    assert samples["batch_monitoring_last_run_timestamp_seconds"] == 130.5
    assert samples["batch_monitoring_last_run_rows"] == 600
    assert samples["batch_monitoring_last_run_duration_seconds"] == 30.5
    assert samples.get("batch_monitoring_last_run_dataset_drift") == expected


def test_failure_metrics_leave_the_last_success_alone():
    from prefect_flows.run_metrics import failure_registry

    assert _samples(failure_registry(200.0)) == {
        "batch_monitoring_last_run_timestamp_seconds": 200.0,
        "batch_monitoring_last_failure_timestamp_seconds": 200.0,
    }


def test_push_to_an_unreachable_gateway_raises_for_the_task_to_retry():
    from local_stack.processes import free_port
    from prefect_flows.run_metrics import failure_registry, push_run

    with pytest.raises(OSError):
        push_run(f"http://127.0.0.1:{free_port()}", "ride_duration", failure_registry(1.0), success=False)


def test_pushgateway_url_is_optional():
    assert BatchSettings.from_env({}).pushgateway_url is None
    assert BatchSettings.from_env({"PUSHGATEWAY_URL": "http://pg:9091"}).pushgateway_url == "http://pg:9091"


def test_last_minutes_runs_the_flow_now_over_what_just_happened(monkeypatch, capsys):
    """Docker path: reports stayed empty until the hourly run (up to ~70 min); `--last-minutes N` runs it now."""
    from datetime import UTC, datetime, timedelta

    from prefect_flows import batch_monitoring as module
    from prefect_flows.period import Period

    now = datetime(2026, 1, 5, 10, 17, 42, 500, tzinfo=UTC)
    second = now.replace(microsecond=0)
    assert Period.last_minutes(30, now) == Period(second - timedelta(minutes=30), second)
    seen = {}

    def fake_flow(start, end, **parameters):
        seen.update(start=start, end=end)
        return {"ride_duration": {"run_id": "r", "message": "ok", "index": "i"}}

    monkeypatch.setattr(module, "batch_monitoring", fake_flow)
    before = datetime.now(UTC)
    assert module.main(["--last-minutes", "45"]) == 0
    assert seen["end"] - seen["start"] == timedelta(minutes=45)
    assert before - timedelta(seconds=1) <= seen["end"] <= datetime.now(UTC)
    for argv in (["--last-minutes", "5", "--start", "2026-01-05T10:00"], ["--last-minutes", "0"]):
        with pytest.raises(SystemExit):
            module.main(argv)


@pytest.mark.integration
def test_dotted_feature_names_are_read_from_mongodb_not_as_missing(mongo):
    # Hostile probe: `flipper.mm` in an inclusion projection is a path into a subdocument; every row read as NaN.
    from pymongo import MongoClient

    from monitoring_core.archive_layout import arrow_schema, to_table
    from monitoring_core.description import parse_description
    from monitoring_core.documents import prediction_document
    from prefect_flows.archive import read_hour
    from prefect_flows.io_mongo import read_predictions

    description = parse_description(
        {
            "name": "penguins",
            "task": "regression",
            "target": {"name": "body.mass"},
            "features": [{"name": "flipper.mm", "kind": "numerical"}, {"name": "island", "kind": "categorical"}],
        }
    )
    assert projection(description) == {"_id": 0, "extra_fields": 0}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    docs = [
        prediction_document(
            f"r{i}",
            start + timedelta(seconds=i),
            "penguins",
            "v1",
            {"flipper.mm": 180.0 + i, "island": "Dream"},
            {"prediction": 4000.0 + i},
            {"note": "x"},
        )
        for i in range(3)
    ]
    with MongoClient(mongo[1], tz_aware=True) as client:
        client["db"]["predictions"].insert_many(docs)
        frame = read_predictions(client, "db", description, Period(start, start + timedelta(minutes=1)))
        # The archive flow reads the hour the same way: the dotted column is in its partition, not nulls.
        hour = list(read_hour(client["db"]["predictions"], description, start, batch_size=100))  # a stream
    assert frame["flipper.mm"].tolist() == [180.0, 181.0, 182.0] and frame["island"].tolist() == ["Dream"] * 3
    assert "extra_fields" not in frame.columns
    table = to_table(hour, arrow_schema(description))
    assert table.column("flipper.mm").to_pylist() == [180.0, 181.0, 182.0]


def test_the_batch_flow_judges_drift_with_the_folders_prepared_calibration(tmp_path, monkeypatch):
    # Hostile probe: a 50-class model's run simulated its whole calibration again (20 min under load): the flow
    # read only the cache beside the reference, never what `prepare` wrote into the folder.
    from monitoring_core.calibration import CalibrationCache, CalibrationSettings, cache_path_for
    from monitoring_core.monitoring_config import DriftSettings
    from prefect_flows import batch_monitoring

    seen = []
    monkeypatch.setattr(batch_monitoring, "analyse", lambda *args: seen.append(args[7].cache))  # the Limits
    drift = DriftSettings(DESCRIPTION, {}, 0.5, "holm", tmp_path / "reference.parquet", CalibrationSettings())
    rows = pd.DataFrame({"x": [1.0, 2.0]})
    period = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC))
    prepared = CalibrationCache(None)
    build = batch_monitoring.build_reports.fn
    build("rid", period, rows, rows, BatchSettings(), drift, prepared)
    build("rid", period, rows, rows, BatchSettings(), drift, None)
    assert seen[0] is prepared and seen[1].path == cache_path_for(tmp_path / "reference.parquet")


def test_an_unknown_model_name_is_one_line_before_any_flow_runs(monkeypatch, capsys, tmp_path):
    """Seen: `--model nope` printed 119 lines of Prefect tracebacks after the temporary server's 10 s start-up."""
    from prefect_flows import batch_monitoring as module

    def no_flow(**_):
        raise AssertionError("the flow must not start")

    monkeypatch.setattr(module, "batch_monitoring", no_flow)
    monkeypatch.setenv("MODELS_DIR", str(Path(__file__).resolve().parents[2] / "models"))
    assert module.main(["--model", "ride_durations", "--last-minutes", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model ride_durations: no model folder of that name" in err
    assert "(models: health_insurance, ride_duration)" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.yaml").write_text("name: bad\ntask: ranking\n")
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    assert module.main(["--model", "bad", "--last-minutes", "5"]) == 2
    assert "task" in capsys.readouterr().err
