"""The batch flow's Dask path: exact aggregates over every row, a uniform deterministic sample, KLL quantiles.

Unit tests compare the per-partition aggregates, merged, with plain pandas on the same rows (a regressor
and a classifier built from scikit-learn data). The integration test writes three archive hours of the
regressor, runs the flow on a threads Dask cluster (one per module) and reads the report's header and
summary.json back.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from batch_sklearn_models import diabetes_regressor, wine_classifier

from local_stack.logged_predictions import logged_documents
from monitoring_core import archive_layout
from prefect_flows import aggregates as agg
from prefect_flows.io_mongo import logged_frame

START = datetime(2026, 3, 2, 6, tzinfo=UTC)
HOURS = 3
ROWS_PER_HOUR = 800
SAMPLE = 600
CONFIG = "defaults:\n  calibration: {enabled: false}\n  min_labelled_rows: 20\n"


def _rows(held_out: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Return `n` rows drawn from the held-out rows, with some values missing and some ages out of range."""
    rng = np.random.default_rng(seed)
    rows = held_out.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    first = rows.columns[0]
    rows.loc[rng.random(n) < 0.05, first] = np.nan
    if "age" in rows.columns:
        rows.loc[rng.random(n) < 0.02, "age"] = 150.0  # the description's maximum is 120
    return rows


def _frame(description, rows: pd.DataFrame, hour: int, seed: int) -> pd.DataFrame:
    """Return the rows as the flow reads them: logged documents, typed (one hour of the period)."""
    start = START + timedelta(hours=hour)
    docs = logged_documents(
        description, rows, start, start + timedelta(hours=1), label_share=0.8, seed=seed, id_prefix=f"h{hour}-"
    )
    table = archive_layout.to_table(docs, archive_layout.arrow_schema(description))
    return logged_frame(description, table.to_pandas())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A regressor and a classifier, and three typed hours of logged rows of each."""
    work = tmp_path_factory.mktemp("scale-models")
    models = {"diabetes": diabetes_regressor(work / "models"), "wine": wine_classifier(work / "models")}
    hours = {
        name: [_frame(m.folder.description, _rows(m.held_out, 800, h), h, h) for h in range(3)]
        for name, m in models.items()
    }
    return models, hours, work


def _merged(description, hours, k=SAMPLE, seed=7):
    return agg.merge_all([agg.partition_aggregates(description, h, k, seed) for h in hours], k)


@pytest.mark.parametrize("name", ["diabetes", "wine"])
def test_merged_counts_and_shares_equal_pandas(built, name):
    models, hours, _ = built
    description = models[name].folder.description
    whole = pd.concat(hours[name], ignore_index=True)
    summary = agg.exact_summary(description, _merged(description, hours[name]))
    target = description.target_column
    assert summary["rows"] == len(whole)
    assert summary["labelled"] == int(whole[target].notna().sum())
    for column in agg.checked_columns(description):
        assert summary["missing_share"][column] == pytest.approx(whole[column].isna().mean(), abs=0)
    if name == "diabetes":
        ages = whole["age"].dropna()
        assert summary["out_of_range_share"]["age"] == ((ages < 0) | (ages > 120)).mean() > 0
        assert summary["categories"]["sex"] == whole["sex"].value_counts().to_dict()
    else:
        assert summary["categories"][target] == whole[target].value_counts().to_dict()


def test_regression_quality_from_sums_equals_pandas(built):
    models, hours, _ = built
    description = models["diabetes"].folder.description
    whole = pd.concat(hours["diabetes"], ignore_index=True)
    labelled = whole.dropna(subset=["progression", "prediction"])
    errors = labelled["prediction"] - labelled["progression"]
    quality = agg.regression_quality(_merged(description, hours["diabetes"]))
    assert quality["rmse"] == pytest.approx(math.sqrt((errors**2).mean()), rel=1e-12)
    assert quality["mae"] == pytest.approx(errors.abs().mean(), rel=1e-12)
    assert quality["mean_error"] == pytest.approx(errors.mean(), rel=1e-12)
    assert quality["abs_max_error"] == errors.abs().max()


def test_classification_quality_from_counts_equals_the_frame_flow(built):
    from prefect_flows.quality import classification_metrics, per_class

    models, hours, _ = built
    description = models["wine"].folder.description
    whole = pd.concat(hours["wine"], ignore_index=True)
    labelled = whole.dropna(subset=["cultivar"])
    overall, classes = agg.classification_quality(description, _merged(description, hours["wine"]))
    expected = classification_metrics(description, labelled)
    assert overall == pytest.approx(expected, rel=1e-12)
    for name, values in per_class(description, labelled).items():
        assert classes[name] == pytest.approx(values, rel=1e-12)


def test_sample_is_deterministic_independent_of_partitioning_and_uniform(built):
    models, hours, _ = built
    description = models["diabetes"].folder.description
    whole = pd.concat(hours["diabetes"], ignore_index=True)
    by_hour = agg.period_sample(_merged(description, hours["diabetes"], k=500))
    at_once = agg.period_sample(
        agg.partition_aggregates(description, whole, 500, 7).merge(agg.PartitionAggregates(), 500)
    )
    assert len(by_hour) == 500
    assert by_hour["request_id"].tolist() == at_once["request_id"].tolist()  # same rows however partitioned
    other_seed = agg.period_sample(_merged(description, hours["diabetes"], k=500, seed=8))
    assert set(other_seed["request_id"]) != set(by_hour["request_id"])
    # Uniform: each hour holds a third of the rows, so about a third of the sample (binomial sd ~ 10.5).
    share = by_hour["request_id"].str.split("-").str[0].value_counts()
    assert share.min() > 500 / 3 - 45 and share.max() < 500 / 3 + 45
    # Over many seeds every row is drawn about equally often (k/N = 500/2400).
    keys = np.stack([agg.sample_keys(whole["request_id"], s) for s in range(200)])
    threshold = np.sort(keys, axis=1)[:, 499:500]
    drawn = (keys <= threshold).mean(axis=0)
    assert abs(drawn.mean() - 500 / 2400) < 1e-9 and drawn.std() < 0.05


def test_kll_quantiles_within_the_stated_rank_error(built):
    models, hours, _ = built
    description = models["diabetes"].folder.description
    whole = pd.concat(hours["diabetes"], ignore_index=True)
    rng = np.random.default_rng(3)
    # Enough distinct values for the sketch to compact (a few thousand rows fit it exactly).
    big = [h.assign(bmi=rng.normal(27, 4, len(h))) for h in hours["diabetes"] for _ in range(20)]
    big = [b.assign(request_id=b["request_id"] + f"-{i}") for i, b in enumerate(big)]
    values = pd.concat(big)["bmi"].to_numpy()
    quantiles = agg.quantiles(_merged(description, big, k=10))["bmi"]
    assert agg.KLL_RANK_ERROR < 0.02
    for name, q in (("p05", 0.05), ("p50", 0.5), ("p95", 0.95)):
        rank = (values <= quantiles[name]).mean()
        assert abs(rank - q) <= agg.KLL_RANK_ERROR, (name, rank)
    assert quantiles["min"] == values.min() and quantiles["max"] == values.max()
    assert len(whole)  # the fixture's rows are untouched


@pytest.fixture(scope="module")
def dask_address():
    """A threads Dask cluster in this process (the flow's workers; one per module, cheap)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.mark.integration
def test_flow_over_archive_and_mongodb_hours_reports_on_the_sample_with_exact_header(
    tmp_path, prefect_env, dask_address, monkeypatch
):
    """Two hours archived, the third still in MongoDB only: one run reads both, exact over all of them."""
    from local_stack.components import start_mongo
    from local_stack.logged_predictions import insert_documents

    models = tmp_path / "models"
    built = diabetes_regressor(models)
    description = built.folder.description
    root = str(tmp_path / "archive")
    frames, in_mongo = [], []
    for hour in range(HOURS):
        start = START + timedelta(hours=hour)
        rows = _rows(built.held_out, ROWS_PER_HOUR, hour)
        docs = logged_documents(
            description, rows, start, start + timedelta(hours=1), label_share=0.8, seed=hour, id_prefix=f"h{hour}-"
        )
        table = archive_layout.to_table(docs, archive_layout.arrow_schema(description))
        if hour < HOURS - 1:
            archive_layout.write_partition(root, description.name, start, table)
        else:
            in_mongo = docs
        frames.append(logged_frame(description, table.to_pandas()))
    whole = pd.concat(frames, ignore_index=True)
    (tmp_path / "monitoring.yaml").write_text(CONFIG)
    proc, uri = start_mongo(tmp_path / "mongo")
    try:
        insert_documents(uri, "prediction_service", in_mongo)
        env = {
            "MONGODB_URI": uri,
            "MODELS_DIR": str(models),
            "EVIDENTLY_CONFIG": str(tmp_path / "monitoring.yaml"),
            "REPORTS_DIR": str(tmp_path / "reports"),
            "PUSHGATEWAY_URL": "",
            "BATCH_DASK_ADDRESS": dask_address,
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        from prefect_flows.batch_monitoring import batch_monitoring

        end = START + timedelta(hours=HOURS)
        summary = batch_monitoring(START, end, archive_root=root, max_rows=SAMPLE)["diabetes"]  # engine auto
    finally:
        proc.stop()
    total = HOURS * ROWS_PER_HOUR
    assert summary["rows"] == {"period": total, "analysed": SAMPLE, "labelled": int(whole["progression"].notna().sum())}
    assert summary["exact"]["missing_share"]["age"] == whole["age"].isna().mean()
    labelled = whole.dropna(subset=["progression"])
    errors = labelled["prediction"] - labelled["progression"]
    assert summary["quality"]["rmse"] == pytest.approx(math.sqrt((errors**2).mean()), rel=1e-12)
    assert summary["quality"]["labelled_rows"] == len(labelled)
    assert summary["sampling"]["applied"] and summary["drift"] is not None
    stored = json.loads((tmp_path / "reports" / summary["run_id"] / "summary.json").read_text())
    assert stored["exact"]["rows"] == total
    html = (tmp_path / "reports" / summary["reports"]["drift"]["html"]).read_text()
    assert f"drawn from a uniform sample of {SAMPLE:,} of {total:,} rows" in html
    assert "Exact over every row of the period" in html
