"""The segment rule: which slice of traffic a row belongs to, the same online and in batch.

A model's description declares its segment dimension (`segments:` in model.yaml: a column, with a
value-to-segment map or bins), so a segment is a bounded metric label whatever the model.
"""

from __future__ import annotations

import pandas as pd

from monitoring_core.description import UNKNOWN_SEGMENT, ModelDescription

__all__ = ["UNKNOWN_SEGMENT", "segment_name", "segment_of", "with_segment"]


def segment_name(description: ModelDescription) -> str | None:
    """Return the name of the model's segment column (None: the model has no segments)."""
    return description.segment.name if description.segment is not None else None


def segment_of(description: ModelDescription, frame: pd.DataFrame) -> pd.Series:
    """Return each row's segment, "Unknown" where the source field is missing."""
    return description.segment_of(frame)


def with_segment(description: ModelDescription, frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with the segment column added."""
    return description.with_segment(frame)
