"""Loading and cleaning real TLC files, on a small parquet written with the TLC schema."""

from __future__ import annotations

import pandas as pd
import pytest

from local_stack.processes import free_port
from ride_duration import tlc
from ride_duration.schema import FIELD_NAMES, TARGET


def _tlc_frame() -> pd.DataFrame:
    pickup = pd.to_datetime(
        [
            "2021-01-01 00:15:56",
            "2021-01-01 00:25:59",
            "2021-01-01 00:45:57",
            "2021-01-01 01:00:00",
            "2021-01-01 02:00:00",
        ]
    )
    minutes = [5.0, 0.5, 75.0, 20.0, 12.0]
    return pd.DataFrame(
        {
            "VendorID": [2, 2, 2, 1, 2],
            "lpep_pickup_datetime": pickup,
            "lpep_dropoff_datetime": pickup + pd.to_timedelta(minutes, unit="m"),
            "store_and_fwd_flag": ["N"] * 5,
            "RatecodeID": [1.0, 1.0, 1.0, None, 1.0],
            "PULocationID": [43, 166, 41, 74, 74],
            "DOLocationID": [151, 239, 42, 75, None],
            "passenger_count": [1.0, 1.0, 1.0, None, 2.0],
            "trip_distance": [1.01, 0.1, 25.0, 2.5, 1.2],
            "fare_amount": [5.5, 2.5, 60.0, 12.0, 7.0],
        }
    )


def test_clean_keeps_one_to_sixty_minute_trips_with_schema_types(tmp_path) -> None:
    path = tmp_path / "green_tripdata_2021-01.parquet"
    _tlc_frame().to_parquet(path)
    frame = tlc.load_tlc(path)
    assert list(frame.columns) == [*FIELD_NAMES, TARGET]
    # 0.5 and 75 minute trips dropped, the row without a dropoff zone dropped.
    assert len(frame) == 2
    assert frame[TARGET].tolist() == pytest.approx([5.0, 20.0])
    assert frame["PULocationID"].dtype == "int64"
    assert frame["passenger_count"].isna().tolist() == [False, True]


def test_clean_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="trip_distance"):
        tlc.clean(_tlc_frame().drop(columns=["trip_distance"]))


def test_url_follows_the_public_pattern() -> None:
    assert tlc.tlc_url("2021-01") == "https://d37ci6vzurychx.cloudfront.net/trip-data/green_tripdata_2021-01.parquet"
    with pytest.raises(ValueError, match="2021-01"):
        tlc.tlc_url("2021-13")


def test_download_when_offline_gives_a_clear_error(tmp_path, monkeypatch) -> None:
    # A closed loopback port stands in for an unreachable internet.
    monkeypatch.setattr(tlc, "TLC_URL", f"http://127.0.0.1:{free_port()}/green_tripdata_{{month}}.parquet")
    with pytest.raises(tlc.DownloadError, match="offline"):
        tlc.download("2021-01", tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_download_skips_a_file_already_there(tmp_path) -> None:
    path = tlc.local_path("2021-02", tmp_path)
    _tlc_frame().to_parquet(path)
    assert tlc.download("2021-02", tmp_path, progress=False) == path
