"""The synthetic generator is reproducible and each drift parameter changes what it names."""

from __future__ import annotations

import numpy as np
import pytest

from ride_duration.schema import FIELD_NAMES, TARGET
from ride_duration.synthetic import RARE_ZONES, DriftParams, generate_trips
from ride_duration.zones import borough_of

N = 4000


@pytest.fixture(scope="module")
def reference():
    return generate_trips(N, seed=11)


def test_same_seed_same_rows(reference) -> None:
    assert generate_trips(N, seed=11).equals(reference)
    assert not generate_trips(N, seed=12).equals(reference)


def test_rows_look_like_tlc_green_taxi(reference) -> None:
    assert len(reference) == N
    assert set(FIELD_NAMES) <= set(reference.columns)
    assert {"lpep_dropoff_datetime", "fare_amount", "total_amount"} <= set(reference.columns)
    assert reference[TARGET].between(1, 60.01).all()
    assert reference["PULocationID"].between(1, 265).all()
    # Skewed toward a few busy zones; long-tailed distances.
    top5 = reference["PULocationID"].value_counts().head(5).sum() / N
    assert top5 > 0.4
    assert reference["trip_distance"].quantile(0.99) > 3 * reference["trip_distance"].median()
    # Fares follow distance.
    assert np.corrcoef(reference["trip_distance"], reference["fare_amount"])[0, 1] > 0.8
    assert not set(reference["PULocationID"]) & set(RARE_ZONES)


def test_distance_scale_shifts_distances(reference) -> None:
    shifted = generate_trips(N, seed=11, drift=DriftParams(distance_scale=1.6))
    assert shifted["trip_distance"].median() > 1.3 * reference["trip_distance"].median()


def test_new_zone_share_brings_unseen_pickup_zones(reference) -> None:
    drifted = generate_trips(N, seed=11, drift=DriftParams(new_zone_share=0.3))
    share_new = drifted["PULocationID"].isin(RARE_ZONES).mean()
    assert 0.2 < share_new < 0.4


def test_missing_share_blanks_passenger_count(reference) -> None:
    drifted = generate_trips(N, seed=11, drift=DriftParams(missing_share=0.25))
    assert reference["passenger_count"].isna().mean() == 0
    assert 0.2 < drifted["passenger_count"].isna().mean() < 0.3


def test_congestion_slows_rides_for_the_same_features(reference) -> None:
    slow = generate_trips(N, seed=11, drift=DriftParams(congestion=1.4))
    # Features are drawn the same way, durations are longer.
    assert abs(slow["trip_distance"].median() - reference["trip_distance"].median()) < 0.2
    assert slow[TARGET].median() > 1.2 * reference[TARGET].median()


def test_borough_change_touches_only_that_borough(reference) -> None:
    drifted = generate_trips(N, seed=11, drift=DriftParams(borough="Manhattan", borough_congestion=1.5))
    for frame in (reference, drifted):
        frame["borough"] = frame["PULocationID"].map(borough_of)
    in_ref = reference[reference.borough == "Manhattan"][TARGET].median()
    in_drift = drifted[drifted.borough == "Manhattan"][TARGET].median()
    out_ref = reference[reference.borough != "Manhattan"][TARGET].median()
    out_drift = drifted[drifted.borough != "Manhattan"][TARGET].median()
    assert in_drift > 1.25 * in_ref
    assert abs(out_drift - out_ref) < 0.1 * out_ref


@pytest.mark.parametrize(
    "kwargs", [{"distance_scale": 0}, {"new_zone_share": 1.5}, {"missing_share": -0.1}, {"borough": "Atlantis"}]
)
def test_bad_drift_parameters_are_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        DriftParams(**kwargs)
