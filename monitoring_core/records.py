"""What the prediction service sends the metrics service: the forwarded row and the label, and the request id.

One definition of each, so the sender and the receiver cannot disagree on a rule (a label of
0 minutes, an id with a space): the prediction service validates `/feedback` with `Label`,
builds rows with `forwarded_row`, and the metrics service validates both with the same models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from monitoring_core.ids import request_id_field
from monitoring_core.unknown_fields import MAX_FIELDS, MAX_NAME_CHARS, UNKNOWN_FIELDS
from monitoring_core.validation import json_number, schema_model
from ride_duration.schema import PREDICTION, REQUEST_ID, TIMESTAMP

# No ride lasts a day; a longer "duration" is a unit or clock error upstream.
MAX_LABEL_MINUTES = 24 * 60.0
# A prediction is only bounded loosely (a broken model must still show up in the quality metrics), but
# bounded: 1e308 once made RMSE +Inf. Squared errors of a million such rows still sum to a finite number.
MAX_PREDICTION_MINUTES = 1_000_000.0

# What the answer to a /feedback item (either service) says happened to it:
ACCEPTED = "accepted"  # it is the label of its prediction now (the first one for that request id)
QUEUED = "queued"  # valid, handed on; whether it wins is decided later (prediction service) or when its row comes
UNKNOWN = "unknown"  # no prediction with that request id
DUPLICATE = "duplicate"  # its prediction already has a label (earlier, or earlier in the same call)
INVALID = "invalid"  # fails the Label rules; `details` names the field and the reason
LABEL_OUTCOMES = (ACCEPTED, QUEUED, UNKNOWN, DUPLICATE, INVALID)


Number = Annotated[float, BeforeValidator(json_number)]
FieldName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class Label(BaseModel):
    """The observed duration of a ride whose prediction was served earlier."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = request_id_field("The request_id the prediction answered with.")
    duration: Number = Field(
        gt=0, le=MAX_LABEL_MINUTES, allow_inf_nan=False, description="Observed ride duration in minutes."
    )


class ForwardedLabel(Label):
    """A label as the prediction service forwards it, stamped with its arrival time."""

    timestamp: datetime | None = Field(default=None, description="When the label arrived; now when absent.")


@lru_cache(maxsize=1)
def row_model() -> type[BaseModel]:
    """Return the pydantic model of one forwarded row: the ride's schema fields plus the prediction's facts."""
    return create_model(
        "MonitoredRow",
        __base__=schema_model(),
        __doc__="One served prediction as the prediction service forwards it.",
        request_id=(str, request_id_field("The prediction's id.")),
        timestamp=(datetime, Field(description="Prediction time, ISO-8601 (UTC when no offset).")),
        model_version=(str | None, Field(default=None, max_length=128)),
        prediction=(
            Number,
            Field(
                ge=-MAX_PREDICTION_MINUTES,
                le=MAX_PREDICTION_MINUTES,
                allow_inf_nan=False,
                description="Predicted duration, minutes (finite, within +-1,000,000).",
            ),
        ),
        unknown_fields=(
            list[FieldName] | None,
            Field(default=None, max_length=MAX_FIELDS, description="Names of the ride's fields outside the schema."),
        ),
    )


def iso(ts: datetime) -> str:
    """Return an ISO-8601 UTC string with milliseconds, ending in Z."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def forwarded_row(
    request_id: str,
    timestamp: datetime,
    model_version: str,
    values: Mapping[str, Any],
    prediction: float,
    unknown_fields: Sequence[str] = (),
) -> dict[str, Any]:
    """Return the row the metrics service's `/iterate` takes for one served prediction.

    `unknown_fields` (names of the ride's fields outside the schema) go under `unknown_fields`, only when any.
    """
    row = {
        REQUEST_ID: request_id,
        TIMESTAMP: iso(timestamp),
        "model_version": model_version,
        **values,
        PREDICTION: prediction,
    }
    if unknown_fields:
        row[UNKNOWN_FIELDS] = list(unknown_fields)
    return row


def label_item(
    index: int, request_id: Any, outcome: str, details: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """Return one entry of a /feedback answer: the item's position, its request id (when a string), its outcome."""
    item: dict[str, Any] = {"index": index, REQUEST_ID: request_id if isinstance(request_id, str) else None}
    item["outcome"] = outcome
    if details is not None:
        item["details"] = details
    return item


def forwarded_label(request_id: str, duration: float, arrived: datetime) -> dict[str, Any]:
    """Return the label the metrics service's `/feedback` takes."""
    return {REQUEST_ID: request_id, "duration": duration, TIMESTAMP: iso(arrived)}
