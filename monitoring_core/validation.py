"""Validate one ride against the schema with a pydantic model generated from `schema.FIELDS`.

Both services validate rides with this one model, so a field's type and range are
defined once, in `ride_duration.schema`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from monitoring_core.ids import request_id_field
from ride_duration.schema import FIELDS, REQUEST_ID, FieldSpec, Kind, local_time

# Error reasons are Prometheus label values: keep this set small and fixed.
REASONS = (
    "invalid_json",
    "duplicate_key",
    "not_an_object",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "out_of_range",
    "not_finite",
    "invalid_value",
    "too_large",
    "too_many_rows",
    "wrong_content_type",
)

_REASON_BY_PYDANTIC_TYPE = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "greater_than": "out_of_range",
    "less_than": "out_of_range",
    "finite_number": "not_finite",
    "model_type": "not_an_object",
    "dict_type": "not_an_object",
}


def json_number(value: Any) -> Any:
    """Return `value` unless it is a string or a bool (a number retyped upstream must be rejected, not coerced)."""
    # An upstream change that retypes a number as a string must be rejected, not coerced.
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON number")
    return value


def _whole_number(value: Any) -> Any:
    # TLC files store some integer fields as floats (1.0): accept those, reject 1.5.
    value = json_number(value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


# A date and a time of day; the offset is optional (TLC pickup times are naive local times).
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_string(value: Any) -> Any:
    # pydantic's datetime also takes Unix time, as a number or as a digit string ("1102"), and a
    # bare date; the contract (and the JSON schema's date-time format) is an ISO-8601 date and time.
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise ValueError("must be an ISO-8601 date and time, e.g. 2021-01-05T08:30:00")
    return value


def _new_york_time(value: datetime) -> datetime:
    # 0001-01-01T01:00:00Z is a valid ISO time (the OpenAPI document says date-time, schemathesis sends it)
    # whose New York time falls before year 1: keep its own clock there rather than refuse or crash.
    # No ride is near either end of the calendar; everywhere else the conversion holds.
    try:
        return local_time(value)
    except OverflowError:
        return value.replace(tzinfo=None)


def _field_annotation(spec: FieldSpec) -> tuple[Any, Any]:
    if spec.kind is Kind.DATETIME:
        # Converted to naive New York local time here, at the one door both services share: the features,
        # the logged document, the forwarded row and the metrics service's window all see the same clock.
        annotation: Any = Annotated[datetime, BeforeValidator(_iso_string), AfterValidator(_new_york_time)]
        return annotation | None, Field(default=None, description=spec.description)
    base = int if spec.dtype is int else float
    check = _whole_number if spec.dtype is int else json_number
    # Bounds sit on the number itself (not on the Optional around it), so the JSON schema of a
    # nullable field still says minimum/maximum.
    bounds = Field(ge=spec.minimum, le=spec.maximum, allow_inf_nan=False if base is float else None)
    annotation = Annotated[base, bounds, BeforeValidator(check)]
    if spec.nullable:
        annotation = annotation | None
    default = ... if spec.required else None
    return annotation, Field(default=default, description=spec.description)


@lru_cache(maxsize=1)
def ride_model() -> type[BaseModel]:
    """Return the pydantic model of one ride request, generated from the schema."""
    fields: dict[str, Any] = {spec.name: _field_annotation(spec) for spec in FIELDS}
    fields[REQUEST_ID] = (
        str | None,
        request_id_field("Client-chosen id, echoed back; generated when absent.", default=None),
    )
    return create_model(
        "Ride", __config__=ConfigDict(extra="forbid"), __doc__="One green-taxi ride to predict.", **fields
    )


def validate_ride(body: Any) -> BaseModel:
    """Validate one ride; raise pydantic's ValidationError on bad input."""
    return ride_model().model_validate(body)


def error_reason(error_type: str) -> str:
    """Map a pydantic error type to one of the fixed `REASONS`."""
    if error_type in _REASON_BY_PYDANTIC_TYPE:
        return _REASON_BY_PYDANTIC_TYPE[error_type]
    if error_type.endswith(("_type", "_parsing")) or error_type in {"value_error"}:
        return "wrong_type"
    return "invalid_value"


def error_details(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Turn a ValidationError into the contract's `details`: one {field, message, reason} per problem."""
    details = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "constrained-")))
        # Union members add their type names to the location; keep the field name only.
        field = loc.split(".")[0] if loc else ""
        message = err["msg"].removeprefix("Value error, ")
        details.append(
            {
                "field": f"{prefix}{field}" if field else prefix.rstrip(".") or "body",
                "message": message,
                "reason": error_reason(err["type"]),
            }
        )
    return details
