"""A seeded generator of NYC green-taxi trips in the TLC schema, with injectable drift.

The same seed and parameters always give the same rows, so tests, the simulator and
the demo can reproduce any scenario. Drift parameters name realistic faults:
a shift of the distance distribution, pickups from zones the reference never saw,
missing values, slower rides for the same features (concept drift), and a change
confined to one borough.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from ride_duration.schema import MAX_DURATION_MINUTES, MIN_DURATION_MINUTES, N_ZONES, TARGET
from ride_duration.zones import BOROUGHS, borough_of, zones_in

DEFAULT_START = datetime(2021, 1, 1)

# Zones where green taxis rarely pick up: the reference never contains them, so a
# scenario that moves pickups there shows up as new categories.
RARE_ZONES: tuple[int, ...] = zones_in("Staten Island") + zones_in("EWR") + zones_in("Unknown")

# Busy green-taxi pickup zones (Harlem, Astoria, Elmhurst, Forest Hills, Fort Greene...).
BUSY_ZONES: tuple[int, ...] = (74, 75, 41, 166, 7, 82, 95, 97, 42, 244, 129, 260, 255, 65, 43, 181, 92, 152)

# Mean speed (mph) by borough of pickup; Manhattan is slowest.
BOROUGH_SPEED = {
    "Manhattan": 9.0,
    "Brooklyn": 12.0,
    "Queens": 14.0,
    "Bronx": 13.0,
    "Staten Island": 18.0,
    "EWR": 25.0,
    "Unknown": 14.0,
}

# Approximate borough centres in miles on a local grid, to make distance depend on the zone pair.
BOROUGH_CENTRE = {
    "Manhattan": (0.0, 3.0),
    "Brooklyn": (1.0, -4.0),
    "Queens": (7.0, 0.0),
    "Bronx": (3.0, 9.0),
    "Staten Island": (-8.0, -9.0),
    "EWR": (-12.0, -5.0),
    "Unknown": (0.0, 0.0),
}


@dataclass(frozen=True)
class DriftParams:
    """Faults to inject into generated trips; the defaults generate reference-like data."""

    distance_scale: float = 1.0  # multiplies every trip distance (covariate shift)
    new_zone_share: float = 0.0  # share of pickups moved to zones the reference never saw
    missing_share: float = 0.0  # share of rows with passenger_count missing
    congestion: float = 1.0  # multiplies every duration for the same features (concept drift)
    borough: str | None = None  # the borough a per-borough change applies to
    borough_congestion: float = 1.0  # duration multiplier for pickups in `borough`

    def __post_init__(self) -> None:
        if self.distance_scale <= 0 or self.congestion <= 0 or self.borough_congestion <= 0:
            raise ValueError("distance_scale, congestion and borough_congestion must be > 0")
        if not 0 <= self.new_zone_share <= 1 or not 0 <= self.missing_share <= 1:
            raise ValueError("new_zone_share and missing_share must be within [0, 1]")
        if self.borough is not None and self.borough not in BOROUGHS:
            raise ValueError(f"borough must be one of {BOROUGHS}, got {self.borough!r}")


NO_DRIFT = DriftParams()


@dataclass(frozen=True)
class _ZoneTable:
    """Pickup weights and a pseudo position for every zone."""

    zone_ids: np.ndarray = field(default_factory=lambda: np.arange(1, N_ZONES + 1))

    def pickup_weights(self) -> np.ndarray:
        weights = np.full(N_ZONES, 0.2)
        for rank, zone in enumerate(BUSY_ZONES):
            weights[zone - 1] = 40.0 / (rank + 1)  # Zipf-like skew toward busy zones
        weights[np.array(RARE_ZONES) - 1] = 0.0
        return weights / weights.sum()

    def positions(self) -> np.ndarray:
        jitter = np.random.default_rng(265).normal(0.0, 1.5, size=(N_ZONES, 2))
        centres = np.array([BOROUGH_CENTRE[borough_of(z)] for z in self.zone_ids])
        return centres + jitter


_ZONES = _ZoneTable()
_PICKUP_WEIGHTS = _ZONES.pickup_weights()
_POSITIONS = _ZONES.positions()


def _pickup_times(rng: np.random.Generator, n: int, start: datetime, span: timedelta) -> pd.Series:
    # Time of day follows a two-peak profile (morning and evening rush).
    hours = np.arange(24)
    profile = 1.0 + 1.5 * np.exp(-((hours - 8.5) ** 2) / 4) + 2.0 * np.exp(-((hours - 18) ** 2) / 6)
    profile[1:6] = 0.3
    days = rng.integers(0, max(span.days, 1), size=n)
    hour = rng.choice(hours, size=n, p=profile / profile.sum())
    seconds = rng.integers(0, 3600, size=n)
    offsets = pd.to_timedelta(days * 86400 + hour * 3600 + seconds, unit="s")
    return pd.Series(pd.Timestamp(start) + offsets)


def _rush_factor(hour: np.ndarray) -> np.ndarray:
    # Rides are slower in the rush hours.
    return 1.0 + 0.35 * np.exp(-((hour - 8.5) ** 2) / 3) + 0.45 * np.exp(-((hour - 17.5) ** 2) / 4)


def generate_trips(
    n: int,
    seed: int = 42,
    drift: DriftParams = NO_DRIFT,
    start: datetime = DEFAULT_START,
    span: timedelta = timedelta(days=31),
) -> pd.DataFrame:
    """Generate `n` green-taxi trips (TLC columns plus `duration` in minutes), 1-60 minutes long."""
    # Oversample, because the 1-60 minute filter drops rows (many under strong drift);
    # retrying with more rows keeps the result a pure function of the arguments.
    m = int(n * 1.25) + 20
    while True:
        frame = _generate(m, seed, drift, start, span)
        if len(frame) >= n or m > 50 * n + 1000:
            return frame.head(n).reset_index(drop=True)
        m *= 2


def _generate(m: int, seed: int, drift: DriftParams, start: datetime, span: timedelta) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pickup_zone = rng.choice(_ZONES.zone_ids, size=m, p=_PICKUP_WEIGHTS)
    if drift.new_zone_share > 0:
        moved = rng.random(m) < drift.new_zone_share
        pickup_zone[moved] = rng.choice(np.array(RARE_ZONES), size=int(moved.sum()))
    same_borough = rng.random(m) < 0.7
    dropoff_zone = np.where(
        same_borough,
        [rng.choice(zones_in(borough_of(z))) for z in pickup_zone],
        rng.choice(_ZONES.zone_ids, size=m, p=_PICKUP_WEIGHTS),
    )
    straight = np.linalg.norm(_POSITIONS[pickup_zone - 1] - _POSITIONS[dropoff_zone - 1], axis=1)
    # Street distance: straight line plus detours, with a lognormal long tail.
    distance = (0.3 + 0.9 * straight) * rng.lognormal(0.0, 0.45, size=m) * drift.distance_scale
    distance = np.round(np.clip(distance, 0.05, 150.0), 2)

    pickup = _pickup_times(rng, m, start, span)
    hour = pickup.dt.hour.to_numpy()
    speed = np.array([BOROUGH_SPEED[borough_of(z)] for z in pickup_zone])
    minutes = 2.0 + 60.0 * distance / speed * _rush_factor(hour)
    minutes *= rng.lognormal(0.0, 0.2, size=m)
    # The 1-60 minute filter selects on the undrifted duration, so concept drift
    # leaves the features' distribution exactly as it was (only durations change).
    keep = (minutes >= MIN_DURATION_MINUTES) & (minutes <= MAX_DURATION_MINUTES)
    minutes = minutes * drift.congestion
    if drift.borough is not None:
        in_borough = np.array([borough_of(z) == drift.borough for z in pickup_zone])
        minutes = np.where(in_borough, minutes * drift.borough_congestion, minutes)

    passengers = rng.choice([1, 1, 1, 1, 1, 2, 2, 3, 5, 6], size=m).astype(float)
    if drift.missing_share > 0:
        passengers[rng.random(m) < drift.missing_share] = np.nan

    fare = np.round(2.5 + 2.5 * distance + 0.5 * minutes / 2 + rng.normal(0, 0.5, size=m).clip(-1, 1), 2)
    tip = np.round(np.where(rng.random(m) < 0.4, fare * 0.18, 0.0), 2)
    frame = pd.DataFrame(
        {
            "VendorID": rng.choice([1, 2], size=m, p=[0.2, 0.8]),
            "lpep_pickup_datetime": pickup,
            "lpep_dropoff_datetime": pickup + pd.to_timedelta(minutes * 60, unit="s").round("s"),
            "store_and_fwd_flag": "N",
            "RatecodeID": 1.0,
            "PULocationID": pickup_zone.astype("int64"),
            "DOLocationID": dropoff_zone.astype("int64"),
            "passenger_count": passengers,
            "trip_distance": distance,
            "fare_amount": fare,
            "extra": 0.5,
            "mta_tax": 0.5,
            "tip_amount": tip,
            "tolls_amount": 0.0,
            "improvement_surcharge": 0.3,
            "total_amount": np.round(fare + tip + 1.3, 2),
            "payment_type": np.where(tip > 0, 1.0, 2.0),
            "trip_type": 1.0,
            "congestion_surcharge": 0.0,
        }
    )
    frame[TARGET] = (frame["lpep_dropoff_datetime"] - frame["lpep_pickup_datetime"]).dt.total_seconds() / 60
    return frame[keep]
