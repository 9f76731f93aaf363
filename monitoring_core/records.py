"""What the prediction service sends the metrics service: the forwarded row and the label, and the request id.

One definition of each per model description, so the sender and the receiver cannot disagree on a
rule (a label out of the target's bounds, a class the model does not have, an id with a space): the
prediction service validates `/feedback` with `label_model(description)`, builds rows with
`forwarded_row`, and the metrics service validates both with the same models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from monitoring_core.description import REQUEST_ID, TIMESTAMP, ModelDescription
from monitoring_core.ids import request_id_field
from monitoring_core.unknown_fields import MAX_FIELDS, MAX_NAME_CHARS, UNKNOWN_FIELDS
from monitoring_core.validation import _category_text, features_model, json_number

# A prediction is only bounded loosely (a broken model must still show up in the quality metrics), but
# bounded: 1e308 once made RMSE +Inf. Squared errors of a million such rows still sum to a finite number.
MAX_PREDICTION_ABS = 1_000_000.0
MAX_PREDICTION_MINUTES = MAX_PREDICTION_ABS  # the name the first (regression-only) release used

# What the answer to a /feedback item (either service) says happened to it:
ACCEPTED = "accepted"  # it is the label of its prediction now (the first one for that request id)
QUEUED = "queued"  # valid, handed on; whether it wins is decided later (prediction service) or when its row comes
UNKNOWN = "unknown"  # no prediction with that request id
DUPLICATE = "duplicate"  # its prediction already has a label (earlier, or earlier in the same call)
INVALID = "invalid"  # fails the Label rules; `details` names the field and the reason
LABEL_OUTCOMES = (ACCEPTED, QUEUED, UNKNOWN, DUPLICATE, INVALID)


Number = Annotated[float, BeforeValidator(json_number)]
FieldName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


def _class_of(description: ModelDescription) -> Any:
    """Return the annotation of a class label: one of the description's classes, kept as its text."""
    classes = description.class_keys

    def known(value: str) -> str:
        if value not in classes:
            raise ValueError(f"must be one of the classes {list(classes)}")
        return value

    def text(value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        return _category_text(value)

    return Annotated[str, BeforeValidator(text), AfterValidator(known)]


def _target_annotation(description: ModelDescription) -> tuple[Any, Any]:
    target = description.target
    text = f"{target.description or 'Observed ' + target.name}" + (f" ({target.unit})" if target.unit else "")
    if description.is_classification:
        return _class_of(description), Field(description=f"{text}: one of {list(description.class_keys)}.")
    low = {"gt" if target.exclusive_minimum else "ge": target.minimum} if target.minimum is not None else {}
    return Number, Field(le=target.maximum, allow_inf_nan=False, description=text + ".", **low)


@lru_cache(maxsize=32)
def label_model(description: ModelDescription) -> type[BaseModel]:
    """Return the pydantic model of one label: the request id and the observed target, typed by the task."""
    return create_model(
        "Label",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"The observed {description.target.name} of a prediction served earlier.",
        request_id=(str, request_id_field("The request_id the prediction answered with.")),
        **{description.target.name: _target_annotation(description)},
    )


@lru_cache(maxsize=32)
def forwarded_label_model(description: ModelDescription) -> type[BaseModel]:
    """Return the label as the prediction service forwards it, stamped with its arrival time."""
    return create_model(
        "ForwardedLabel",
        __base__=label_model(description),
        timestamp=(datetime | None, Field(default=None, description="When the label arrived; now when absent.")),
    )


def label_value(description: ModelDescription, label: BaseModel) -> Any:
    """Return the observed target of a validated label."""
    return getattr(label, description.target.name)


def _prediction_annotation(description: ModelDescription) -> tuple[Any, Any]:
    if description.is_classification:
        return _class_of(description), Field(description="Predicted class.")
    unit = f", {description.prediction.unit}" if description.prediction.unit else ""
    return Number, Field(
        ge=-MAX_PREDICTION_ABS,
        le=MAX_PREDICTION_ABS,
        allow_inf_nan=False,
        description=f"Predicted value{unit} (finite, within +-1,000,000).",
    )


Probability = Annotated[float, BeforeValidator(json_number), Field(ge=0, le=1, allow_inf_nan=False)]


@lru_cache(maxsize=32)
def row_model(description: ModelDescription) -> type[BaseModel]:
    """Return the pydantic model of one forwarded row: the features plus the prediction's facts."""
    probabilities = {
        column: (Probability | None, Field(default=None, description=f"Probability of class {cls}."))
        for cls, column in description.probability_columns.items()
    }
    return create_model(
        "MonitoredRow",
        __base__=features_model(description),
        __doc__="One served prediction as the prediction service forwards it.",
        request_id=(str, request_id_field("The prediction's id.")),
        timestamp=(datetime, Field(description="Prediction time, ISO-8601 (UTC when no offset).")),
        model_version=(str | None, Field(default=None, max_length=128)),
        unknown_fields=(
            list[FieldName] | None,
            Field(default=None, max_length=MAX_FIELDS, description="Names of the fields outside the model."),
        ),
        **{description.prediction_column: _prediction_annotation(description)},
        **probabilities,
    )


def iso(ts: datetime) -> str:
    """Return an ISO-8601 UTC string with milliseconds, ending in Z."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def forwarded_row(
    request_id: str,
    timestamp: datetime,
    model_version: str,
    values: Mapping[str, Any],
    outputs: Mapping[str, Any],
    unknown_fields: Sequence[str] = (),
) -> dict[str, Any]:
    """Return the row the metrics service's `/iterate` takes for one served prediction.

    `outputs` holds the prediction (and class probabilities) under the description's column names;
    `unknown_fields` (names of the request's fields outside the model's) go under `unknown_fields`, only when any.
    """
    row = {
        REQUEST_ID: request_id,
        TIMESTAMP: iso(timestamp),
        "model_version": model_version,
        **values,
        **outputs,
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


def forwarded_label(description: ModelDescription, request_id: str, value: Any, arrived: datetime) -> dict[str, Any]:
    """Return the label the metrics service's `/feedback` takes."""
    return {REQUEST_ID: request_id, description.target.name: value, TIMESTAMP: iso(arrived)}
