"""The segment rule: which slice of traffic a row belongs to, the same online and in batch.

The schema declares the segment (`SEGMENT`) and the field it is derived from (`SEGMENT_SOURCE`):
the pickup borough of the pickup zone, 7 values, so it is a bounded metric label.
"""

from __future__ import annotations

import pandas as pd

from ride_duration.schema import SEGMENT, SEGMENT_SOURCE
from ride_duration.zones import borough_of

UNKNOWN_SEGMENT = "Unknown"


def segment_of(frame: pd.DataFrame) -> pd.Series:
    """Return each row's segment, "Unknown" where the source field is missing."""
    source = frame[SEGMENT_SOURCE]
    lookup = {value: borough_of(value) for value in pd.unique(source.dropna())}
    return source.map(lookup).fillna(UNKNOWN_SEGMENT)


def with_segment(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with the segment column added."""
    return frame.assign(**{SEGMENT: segment_of(frame)})
