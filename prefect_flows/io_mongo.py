"""Read one period's logged predictions from MongoDB, and store run summaries there."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pymongo import MongoClient

from monitoring_core.description import ModelDescription
from monitoring_core.documents import MODEL_NAME, MODEL_VERSION, REPORTS, TARGET, predictions_collection
from monitoring_core.unknown_fields import EXTRA_FIELDS
from prefect_flows.columns import REQUEST_ID, TIMESTAMP, logged_fields, typed
from prefect_flows.period import Period

TEXT_COLUMNS = (MODEL_VERSION, REQUEST_ID)


def fields_projection(fields: Iterable[str], excluded: Iterable[str] = ()) -> dict[str, int]:
    """Return the MongoDB projection reading `fields`.

    A dotted name in a projection is a path into a subdocument: `flipper.mm` would read as missing on
    every row. With one, the projection leaves out `excluded` instead; the reader keeps its own columns.
    """
    fields = list(fields)
    if any("." in field for field in fields):
        return {"_id": 0, **dict.fromkeys(excluded, 0)}
    return {"_id": 0, **dict.fromkeys(fields, 1)}


def projection(description: ModelDescription) -> dict[str, int]:
    """Return the MongoDB projection of the fields the reports need (the description's, the ids and times)."""
    return fields_projection(logged_fields(description), excluded=(EXTRA_FIELDS,))


def period_filter(model_name: str, period: Period) -> dict[str, Any]:
    """Return the query selecting one model's predictions made within the period."""
    return {MODEL_NAME: model_name, TIMESTAMP: {"$gte": period.start, "$lt": period.end}}


def read_predictions(
    client: MongoClient,
    database: str,
    description: ModelDescription,
    period: Period,
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Return the model's predictions of the period, typed by its description, the label under the target's name.

    Reads the cursor in batches; a prediction without ground truth has a missing target.
    """
    fields = logged_fields(description)
    cursor = predictions_collection(client, database).find(
        period_filter(description.name, period), projection(description), batch_size=batch_size
    )
    records: list[dict] = []
    for record in cursor:
        records.append(record)
        if progress is not None and len(records) % batch_size == 0:
            progress(len(records))
    if progress is not None and len(records) % batch_size:
        progress(len(records))
    return logged_frame(description, pd.DataFrame.from_records(records, columns=list(fields)))


def logged_frame(description: ModelDescription, frame: pd.DataFrame) -> pd.DataFrame:
    """Return logged documents' fields (MongoDB's, or an archive partition's columns) typed for the reports."""
    # The label is stored under `target` on the prediction's document: the reports name it as the reference does.
    frame = typed(description, frame.rename(columns={TARGET: description.target_column}))
    # When the prediction was served: naive UTC, the time axis of the reports.
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], errors="coerce", utc=True).dt.tz_localize(None)
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].astype(object)
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
