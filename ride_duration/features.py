"""Turn raw ride records into the model's feature dicts."""

from __future__ import annotations

import math

import pandas as pd

from ride_duration.schema import DATETIME_FIELD, local_time
from ride_duration.zones import borough_of


def ride_features(ride: dict) -> dict:
    """Return the feature dict of one ride (raw API fields) for the DictVectorizer."""
    distance = float(ride["trip_distance"])
    features = {
        "PU_DO": f"{ride['PULocationID']}_{ride['DOLocationID']}",
        "trip_distance": distance,
        "log_trip_distance": math.log1p(distance),
        # Speed differs by borough, so the minutes per mile do too.
        f"trip_distance_{borough_of(ride['PULocationID'])}": distance,
    }
    pickup = ride.get(DATETIME_FIELD)
    if pickup is not None and not pd.isna(pickup):
        ts = pd.Timestamp(pickup)
        if ts.tzinfo is not None:  # an offset: the features are New York local time, as in the TLC data
            ts = pd.Timestamp(local_time(ts.to_pydatetime()))
        features["pickup_hour"] = str(ts.hour)  # categorical: rush hours are not linear
        features["weekend"] = float(ts.dayofweek >= 5)
    return features


def baseline_features(ride: dict) -> dict:
    """Return the course's features: the zone pair and the distance."""
    return {"PU_DO": f"{ride['PULocationID']}_{ride['DOLocationID']}", "trip_distance": float(ride["trip_distance"])}


def frame_features(frame: pd.DataFrame, fn=ride_features) -> list[dict]:
    """Return the feature dicts of every row of a frame of raw rides."""
    return [fn(r) for r in frame.to_dict(orient="records")]
