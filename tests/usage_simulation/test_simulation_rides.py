"""Rides become API request bodies with exactly the schema's fields; faults land in the bodies and labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from monitoring_core.validation import validate_ride
from ride_duration.schema import FIELD_NAMES, TARGET
from ride_duration.synthetic import RARE_ZONES, DriftParams
from ride_duration.zones import borough_of
from usage_simulation.rides import PhaseFeed, RideSource, apply_schema_change, drift_real_rides, to_payloads
from usage_simulation.scenario import Phase, SchemaChange


def test_payloads_carry_only_api_fields_as_json_and_validate() -> None:
    frame = RideSource(seed=3).chunks(0, Phase("p", drift=DriftParams(missing_share=0.5))).__next__().head(200)
    pairs = to_payloads(frame)
    assert len(pairs) == 200
    nulls = 0
    for body, duration in pairs:
        assert set(body) == set(FIELD_NAMES)
        json.dumps(body, allow_nan=False)  # NaN would not be valid JSON
        assert isinstance(body["lpep_pickup_datetime"], str) and isinstance(body["PULocationID"], int)
        nulls += body["passenger_count"] is None
        validate_ride(body)
        assert 1 <= duration <= 60
    assert 50 < nulls < 150


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (SchemaChange(rename={"trip_distance": "trip_miles"}), "trip_distance"),
        (SchemaChange(retype={"PULocationID": "str"}), "PULocationID"),
        (SchemaChange(drop=("DOLocationID",)), "DOLocationID"),
    ],
)
def test_schema_changes_make_bodies_the_service_rejects_naming_the_field(change: SchemaChange, field: str) -> None:
    body, _ = to_payloads(RideSource(seed=1).chunks(0, Phase("p")).__next__().head(1))[0]
    changed = apply_schema_change(body, change, np.random.default_rng(0))
    with pytest.raises(ValidationError) as caught:
        validate_ride(changed)
    assert field in str(caught.value)


def test_schema_change_share_applies_to_part_of_the_rows() -> None:
    body = {"trip_distance": 1.0, "PULocationID": 4}
    rng = np.random.default_rng(0)
    changed = sum(
        "trip_miles" in apply_schema_change(body, SchemaChange(rename={"trip_distance": "trip_miles"}, share=0.3), rng)
        for _ in range(1000)
    )
    assert 250 < changed < 350


def test_feed_is_reproducible_and_separate_per_phase() -> None:
    clean, shifted = Phase("clean"), Phase("shift", drift=DriftParams(distance_scale=3.0), clean=False)
    first, second = PhaseFeed(RideSource(seed=5), seed=5), PhaseFeed(RideSource(seed=5), seed=5)
    a = [first.next(0, clean) for _ in range(300)]
    assert a == [second.next(0, clean) for _ in range(300)]
    b = [first.next(1, shifted) for _ in range(300)]
    mean = lambda pairs: np.mean([body["trip_distance"] for body, _ in pairs])  # noqa: E731
    assert mean(b) > 1.5 * mean(a)  # the 1-60 minute filter trims the longest trips


def test_drift_on_real_rides() -> None:
    frame = pd.DataFrame(
        {
            "lpep_pickup_datetime": pd.to_datetime(["2021-01-01 08:00"] * 1000),
            "PULocationID": [74] * 500 + [7] * 500,
            "DOLocationID": [75] * 1000,
            "trip_distance": [2.0] * 1000,
            "passenger_count": [1.0] * 1000,
            TARGET: [10.0] * 1000,
        }
    )
    drifted = drift_real_rides(frame, DriftParams(distance_scale=2.0, new_zone_share=0.5, missing_share=0.5), 0)
    assert (drifted["trip_distance"] == 4.0).all() and (drifted[TARGET] == 20.0).all()
    assert drifted["PULocationID"].isin(RARE_ZONES).mean() == pytest.approx(0.5, abs=0.07)
    assert drifted["passenger_count"].isna().mean() == pytest.approx(0.5, abs=0.07)
    slowed = drift_real_rides(frame, DriftParams(borough="Manhattan", borough_congestion=3.0), 0)
    manhattan = frame["PULocationID"].map(borough_of) == "Manhattan"
    assert (slowed.loc[manhattan, TARGET] == 30.0).all() and (slowed.loc[~manhattan, TARGET] == 10.0).all()


def test_tlc_file_is_replayed_with_the_phase_faults(tmp_path) -> None:
    from ride_duration.synthetic import generate_trips

    path = tmp_path / "green_tripdata_2021-01.parquet"
    generate_trips(500, seed=2).drop(columns=[TARGET]).to_parquet(path)  # the TLC file's own columns
    source = RideSource(seed=4, data_path=path)
    clean = to_payloads(next(source.chunks(0, Phase("clean"))))
    shifted = to_payloads(next(source.chunks(1, Phase("shift", drift=DriftParams(distance_scale=2.0)))))
    assert len(clean) == 500
    for body, duration in clean[:50]:
        validate_ride(body)
        assert 1 <= duration <= 60
    mean = lambda pairs: np.mean([body["trip_distance"] for body, _ in pairs])  # noqa: E731
    assert mean(shifted) == pytest.approx(2 * mean(clean), rel=0.01)
