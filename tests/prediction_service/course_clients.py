"""Rides as the course's client sends them: whole TLC green-taxi rows, read from a parquet file, one per POST.

The course's `send_data.py` reads a monthly parquet file, gives each row a uuid `id`, and posts
the row as JSON with every column, native types and nulls. The file here is the project's
synthetic trips in the real file's layout (all 20 columns, their dtypes, ~10% of rows with the
dispatch columns null, `ehail_fee` always null), and the rows are encoded the ways a course
user writes that client: exactly as the course's `send_data.py` does (pandas `iterrows()` and
`row.to_json()`: datetimes as epoch milliseconds, missing as null), pyarrow's `to_pylist()`
(datetimes through `isoformat()`), pandas rows through `json.dumps(default=str)` (missing numbers
as NaN tokens), and `Series.to_json(date_format="iso")`.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ride_duration.synthetic import generate_trips
from ride_duration.tlc import GREEN_COLUMNS, to_green_layout

STYLES = ("course_send_data", "pyarrow_isoformat", "pandas_default_str", "pandas_to_json_iso")


def write_month(path: Path, rows: int = 200, seed: int = 5) -> Path:
    """Write a green-taxi month of `rows` trips in the TLC file layout to `path`."""
    frame = to_green_layout(generate_trips(rows, seed=seed), null_share=0.1, seed=seed)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), str(path))
    return path


def _isoformat(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def course_bodies(path: Path, style: str) -> list[tuple[str, bytes, float]]:
    """Return (id, JSON body, true duration in minutes) for every row of the file, encoded in `style`."""
    out = []
    if style == "pyarrow_isoformat":
        for row in pq.read_table(str(path)).to_pylist():
            row["id"] = str(uuid.uuid4())
            truth = (row["lpep_dropoff_datetime"] - row["lpep_pickup_datetime"]).total_seconds() / 60
            out.append((row["id"], json.dumps(row, default=_isoformat).encode(), truth))
        return out
    frame = pd.read_parquet(path)
    for _, series in frame.iterrows():
        series = series.copy()
        series["id"] = str(uuid.uuid4())
        truth = (series["lpep_dropoff_datetime"] - series["lpep_pickup_datetime"]).total_seconds() / 60
        if style == "pandas_default_str":
            body = json.dumps(series.to_dict(), default=str).encode()  # NaN tokens for missing numbers
        elif style == "course_send_data":
            body = series.to_json().encode()  # the course's own call: epoch milliseconds
        elif style == "pandas_to_json_iso":
            body = series.to_json(date_format="iso").encode()  # missing as null
        else:
            raise ValueError(f"unknown style {style!r}")
        out.append((series["id"], body, truth))
    return out


EXTRA_COLUMNS = tuple(
    c
    for c in GREEN_COLUMNS
    if c not in {"lpep_pickup_datetime", "PULocationID", "DOLocationID", "passenger_count", "trip_distance"}
)
