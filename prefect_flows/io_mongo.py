"""Read one period's logged predictions from MongoDB, and store run summaries there."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pymongo import MongoClient

from monitoring_core.documents import MODEL_NAME, MODEL_VERSION, REPORTS, TARGET, predictions_collection
from prefect_flows.period import Period
from ride_duration.schema import (
    CATEGORICAL_FEATURES,
    DATETIME_FIELD,
    MONITORED_FIELDS,
    PREDICTION,
    REQUEST_ID,
    TIMESTAMP,
)

# Ground truth as the prediction service stores it on the prediction's document.
TARGET_FIELD = TARGET
# Only what the reports use: the monitored fields, the prediction, the label and the version, plus the
# request id, the prediction's time and the pickup time, which type the reports' id and time columns.
COLUMNS: tuple[str, ...] = (
    *(f.name for f in MONITORED_FIELDS),
    PREDICTION,
    TARGET_FIELD,
    MODEL_VERSION,
    REQUEST_ID,
    TIMESTAMP,
    DATETIME_FIELD,
)
TEXT_COLUMNS = (MODEL_VERSION, REQUEST_ID)
TIME_COLUMNS = (TIMESTAMP, DATETIME_FIELD)


def projection() -> dict[str, int]:
    """Return the MongoDB projection of the fields the reports need."""
    return {"_id": 0, **dict.fromkeys(COLUMNS, 1)}


def period_filter(model_name: str, period: Period) -> dict[str, Any]:
    """Return the query selecting one model's predictions made within the period."""
    return {MODEL_NAME: model_name, TIMESTAMP: {"$gte": period.start, "$lt": period.end}}


def read_predictions(
    client: MongoClient,
    database: str,
    model_name: str,
    period: Period,
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Return the period's predictions as a frame with COLUMNS, reading the cursor in batches."""
    cursor = predictions_collection(client, database).find(
        period_filter(model_name, period), projection(), batch_size=batch_size
    )
    records: list[dict] = []
    for record in cursor:
        records.append(record)
        if progress is not None and len(records) % batch_size == 0:
            progress(len(records))
    if progress is not None and len(records) % batch_size:
        progress(len(records))
    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    # Missing values arrive as None: make every numeric column float so NaN means missing.
    for column in COLUMNS:
        if column in TIME_COLUMNS:
            # Naive UTC, as the reference's pickup times; the pickup time is logged as the client's ISO string.
            frame[column] = pd.to_datetime(frame[column], errors="coerce", utc=True, format="ISO8601").dt.tz_localize(
                None
            )
        elif column not in TEXT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in CATEGORICAL_FEATURES:
        # Zone ids stay integers, as in the reference, so categories compare equal.
        if frame[column].notna().all():
            frame[column] = frame[column].astype("int64")
    return frame


@dataclass(frozen=True)
class Sampling:
    """How the analysed rows were chosen from the period's rows."""

    applied: bool
    period_rows: int
    analysed_rows: int
    max_rows: int
    seed: int
    strategy: str = "uniform random sample without replacement (numpy Generator), seed from model and period"

    def as_dict(self) -> dict[str, Any]:
        """Return the sampling facts for the summary."""
        return {
            "applied": self.applied,
            "period_rows": self.period_rows,
            "analysed_rows": self.analysed_rows,
            "max_rows": self.max_rows,
            "seed": self.seed,
            "strategy": self.strategy,
        }


def sampling_seed(model_name: str, period: Period) -> int:
    """Return a seed fixed by model and period, so re-running a period analyses the same rows."""
    digest = hashlib.sha256(f"{model_name}|{period.start.isoformat()}|{period.end.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int) -> tuple[pd.DataFrame, Sampling]:
    """Return at most `max_rows` rows: all of them, or a seeded uniform sample in their original order."""
    if len(frame) <= max_rows:
        return frame, Sampling(False, len(frame), len(frame), max_rows, seed)
    chosen = np.sort(np.random.default_rng(seed).choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[chosen].reset_index(drop=True), Sampling(True, len(frame), max_rows, max_rows, seed)


def store_summary(client: MongoClient, database: str, summary: dict[str, Any]) -> None:
    """Insert or replace the run's summary in the `reports` collection, keyed by run id."""
    client[database][REPORTS].replace_one({"run_id": summary["run_id"]}, summary, upsert=True)
