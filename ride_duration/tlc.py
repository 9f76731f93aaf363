"""Real NYC TLC green-taxi data: download the monthly parquet files and clean them."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd
import requests
from tqdm import tqdm

from ride_duration.schema import FIELD_NAMES, MAX_DURATION_MINUTES, MIN_DURATION_MINUTES, TARGET

# Every column of a green-taxi monthly file (2021 on) with the dtype pandas reads it as; `ehail_fee` is always null.
GREEN_COLUMNS: dict[str, str] = {
    "VendorID": "int64",
    "lpep_pickup_datetime": "datetime64[us]",
    "lpep_dropoff_datetime": "datetime64[us]",
    "store_and_fwd_flag": "object",
    "RatecodeID": "float64",
    "PULocationID": "int64",
    "DOLocationID": "int64",
    "passenger_count": "float64",
    "trip_distance": "float64",
    "fare_amount": "float64",
    "extra": "float64",
    "mta_tax": "float64",
    "tip_amount": "float64",
    "tolls_amount": "float64",
    "ehail_fee": "object",
    "improvement_surcharge": "float64",
    "total_amount": "float64",
    "payment_type": "float64",
    "trip_type": "float64",
    "congestion_surcharge": "float64",
}
# In the real files these go missing together (street-hail rows reported without the dispatch details).
DISPATCH_COLUMNS = (
    "store_and_fwd_flag",
    "RatecodeID",
    "passenger_count",
    "payment_type",
    "trip_type",
    "congestion_surcharge",
)

TLC_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data/green_tripdata_{month}.parquet"
DEFAULT_DATA_DIR = Path("data")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class DownloadError(RuntimeError):
    """The TLC file could not be fetched (offline, or the month does not exist)."""


def tlc_url(month: str) -> str:
    """Return the public URL of the green-taxi file for `month` (YYYY-MM)."""
    if not _MONTH.match(month):
        raise ValueError(f"month must look like 2021-01, got {month!r}")
    return TLC_URL.format(month=month)


def local_path(month: str, data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    """Return where the file for `month` is kept locally."""
    return Path(data_dir) / f"green_tripdata_{month}.parquet"


def download(month: str, data_dir: Path = DEFAULT_DATA_DIR, progress: bool = True) -> Path:
    """Stream the TLC file for `month` into `data_dir` with a progress bar; skip if present."""
    target = local_path(month, data_dir)
    if target.exists():
        return target
    url = tlc_url(month)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    try:
        with requests.get(url, stream=True, timeout=(10, 60)) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length", 0)) or None
            with (
                open(partial, "wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar,
            ):
                for chunk in response.iter_content(chunk_size=1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as exc:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"could not download {url}: {exc}. Are you offline? Place the file at {target} by hand, "
            "or train on synthetic data with --source synthetic."
        ) from exc
    partial.rename(target)
    return target


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Compute `duration` (minutes), keep 1-60 minute trips and the schema's columns, with its types."""
    missing = {"lpep_pickup_datetime", "lpep_dropoff_datetime", *FIELD_NAMES} - set(frame.columns)
    if missing:
        raise ValueError(f"not a TLC green-taxi file: missing columns {sorted(missing)}")
    frame = frame.copy()
    pickup = pd.to_datetime(frame["lpep_pickup_datetime"])
    dropoff = pd.to_datetime(frame["lpep_dropoff_datetime"])
    frame["lpep_pickup_datetime"] = pickup
    frame[TARGET] = (dropoff - pickup).dt.total_seconds() / 60
    frame = frame[frame[TARGET].between(MIN_DURATION_MINUTES, MAX_DURATION_MINUTES)]
    frame = frame.dropna(subset=["PULocationID", "DOLocationID", "trip_distance"])
    frame = frame[frame["trip_distance"].between(0, 200)]
    frame["PULocationID"] = frame["PULocationID"].astype("int64")
    frame["DOLocationID"] = frame["DOLocationID"].astype("int64")
    frame["passenger_count"] = frame["passenger_count"].astype("float64")
    frame["trip_distance"] = frame["trip_distance"].astype("float64")
    return frame[[*FIELD_NAMES, TARGET]].reset_index(drop=True)


def to_green_layout(trips: pd.DataFrame, null_share: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Return generated trips as a TLC green-taxi file holds them: all 20 columns, its dtypes and its nulls."""
    import numpy as np

    frame = trips.copy().reset_index(drop=True)
    frame["ehail_fee"] = None
    frame = frame[list(GREEN_COLUMNS)]
    missing = np.random.default_rng(seed).random(len(frame)) < null_share
    for column in DISPATCH_COLUMNS:
        frame[column] = frame[column].astype("object" if column == "store_and_fwd_flag" else "float64")
        frame.loc[missing, column] = None if column == "store_and_fwd_flag" else np.nan
    return frame.astype(GREEN_COLUMNS)


def load_tlc(path: Path | str) -> pd.DataFrame:
    """Read one TLC green-taxi parquet file and clean it."""
    return clean(pd.read_parquet(path))


def main(argv: list[str] | None = None) -> int:
    """Download TLC green-taxi months: `python -m ride_duration.tlc 2021-01 2021-02`."""
    parser = argparse.ArgumentParser(description="Download NYC TLC green-taxi monthly parquet files.")
    parser.add_argument("months", nargs="+", help="months as YYYY-MM, e.g. 2021-01")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where to keep the files")
    args = parser.parse_args(argv)
    try:
        for month in args.months:
            print(download(month, args.data_dir))
    except (DownloadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
