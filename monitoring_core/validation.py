"""Validate one request row against a model's description with a pydantic model generated from its features.

Both services validate rows with this one model, so a field's type and range are defined
once, in the model's `model.yaml` (monitoring_core/description.py). Missing is missing: for a
field that may be absent, `null`, NaN and leaving it out mean the same; a required field that
is `null` is missing, and NaN or Infinity there is `not_finite`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
)
from pydantic_core import PydanticCustomError

from monitoring_core.description import (
    MAX_CATEGORY_LENGTH,
    REQUEST_ID,
    FeatureSpec,
    Kind,
    ModelDescription,
    category_key,
)
from monitoring_core.ids import REQUEST_ID_MAX_LENGTH, REQUEST_ID_PATTERN, request_id_field

# The course's client (and many others) names its row id `id`: it is the request id, under another name.
CLIENT_ID = "id"


def request_keys(description: ModelDescription) -> frozenset[str]:
    """Return the keys a request row may carry: the model's features and the ids; every other key is unknown."""
    return frozenset({*description.feature_names, REQUEST_ID, CLIENT_ID})


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
    "wrong_content_encoding",
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


INT64_RANGE = (-(2**63), 2**63 - 1)


def _whole_number(value: Any) -> Any:
    # TLC files store some integer fields as floats (1.0): accept those, reject 1.5.
    value = json_number(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("finite_number", "Input should be a finite number")
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _nan_is_missing(value: Any) -> Any:
    # pandas reads a missing number as NaN; for a field that may be absent, that is the same as null.
    return None if _is_nan(value) else value


def _null_is_missing(value: Any) -> Any:
    # A required field sent as null is a missing field (not a type error): say so.
    if value is None:
        raise PydanticCustomError("missing", "Field required (null is a missing value)")
    return value


# A date and a time of day; the offset is optional (TLC pickup times are naive local times).
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _json_integer(value: Any) -> int | None:
    # JSON has one number type: 6299 and 6299.0 are the same integer (JSON Schema agrees); a bool is none.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


# pandas' Series.to_json() (what the course's send_data.py posts) writes datetimes as integer epoch
# milliseconds of the naive wall-clock time. Milliseconds are unambiguous from 1973 to 9999; Unix
# seconds (or any smaller number) are not, and stay refused.
EPOCH_MS_RANGE = (10**11, 253_402_300_799_999)


def _iso_string(value: Any) -> Any:
    # pydantic's datetime also takes Unix time, as a number or as a digit string ("1102"), and a
    # bare date; the contract (and the JSON schema's date-time format) is an ISO-8601 date and time.
    if value is None or isinstance(value, datetime):
        return value
    millis = _json_integer(value)
    if millis is not None and EPOCH_MS_RANGE[0] <= millis <= EPOCH_MS_RANGE[1]:
        return datetime.fromtimestamp(millis / 1000, UTC).replace(tzinfo=None)
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise ValueError("must be an ISO-8601 date and time, e.g. 2021-01-05T08:30:00 (or integer epoch milliseconds)")
    return value


def _datetime_schema(description: str) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "integer", "minimum": EPOCH_MS_RANGE[0], "maximum": EPOCH_MS_RANGE[1]},
            {"type": "null"},
        ],
        "default": None,
        "description": description,
    }


def _local_time(spec: FeatureSpec) -> Any:
    def convert(value: datetime) -> datetime:
        # 0001-01-01T01:00:00Z is a valid ISO time (the OpenAPI document says date-time, schemathesis sends it)
        # whose local time may fall before year 1: keep its own clock there rather than refuse or crash.
        try:
            return spec.local_time(value)
        except OverflowError:
            return value.replace(tzinfo=None)

    return convert


def _category_text(value: Any) -> Any:
    # A string category sent as a number (3 for "3") is the same category; a bool or a fraction is not.
    if isinstance(value, str):
        return value
    number = _json_integer(value)
    if number is not None:
        return category_key(number)
    raise ValueError("must be a string")


def _json_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _field_annotation(spec: FeatureSpec) -> tuple[Any, Any]:
    if spec.kind is Kind.DATETIME:
        # Converted to the feature's local time here, at the one door both services share: the features,
        # the logged document, the forwarded row and the metrics service's window all see the same clock.
        annotation: Any = Annotated[datetime, BeforeValidator(_iso_string), AfterValidator(_local_time(spec))]
        optional = Annotated[
            annotation | None, BeforeValidator(_nan_is_missing), WithJsonSchema(_datetime_schema(spec.description))
        ]
        if spec.required and not spec.nullable:
            return Annotated[annotation, BeforeValidator(_null_is_missing)], Field(description=spec.description)
        return optional, Field(default=None, description=spec.description)
    dtype = spec.python_type
    if dtype is str:
        # "" is a category like any other (references hold it; a model fitted on them knows it); the length
        # bound keeps one row's text small, and the reference check refuses a reference beyond it.
        annotation = Annotated[str, Field(max_length=MAX_CATEGORY_LENGTH), BeforeValidator(_category_text)]
    elif dtype is bool:
        annotation = Annotated[bool, BeforeValidator(_json_bool)]
    else:
        base = int if dtype is int else float
        check = _whole_number if dtype is int else json_number
        # Bounds sit on the number itself (not on the Optional around it), so the JSON schema of a
        # nullable field still says minimum/maximum.
        low, high = spec.minimum, spec.maximum
        if base is int:  # wider than 64 bits cannot be stored (MongoDB refuses the record after it was served)
            low = INT64_RANGE[0] if low is None else max(low, INT64_RANGE[0])
            high = INT64_RANGE[1] if high is None else min(high, INT64_RANGE[1])
        bounds = Field(ge=low, le=high, allow_inf_nan=False if base is float else None)
        annotation = Annotated[base, bounds, BeforeValidator(check)]
    if spec.nullable:
        annotation = Annotated[annotation | None, BeforeValidator(_nan_is_missing)]
    elif spec.required:
        annotation = Annotated[annotation, BeforeValidator(_null_is_missing)]
    default = ... if spec.required else None
    return annotation, Field(default=default, description=spec.description)


# A parquet row's integer id (to_pylist gives an int) becomes its decimal text; a bool is no id. Negative
# or wider-than-int64 integers stay integers and are refused: the JSON schema below says exactly this.
MAX_INT_ID = 2**63 - 1


def _id_text(value: Any) -> Any:
    number = _json_integer(value)
    if number is not None and 0 <= number <= MAX_INT_ID:
        return str(number)
    return value


def _id_schema(description: str) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "string", "minLength": 1, "maxLength": REQUEST_ID_MAX_LENGTH, "pattern": REQUEST_ID_PATTERN},
            {"type": "integer", "minimum": 0, "maximum": MAX_INT_ID},
            {"type": "null"},
        ],
        "default": None,
        "description": description,
    }


def _same_id(cls: type[BaseModel], value: str | None, info: ValidationInfo) -> str | None:
    # `id` and `request_id` name one key: both given and different is ambiguous, so it is refused.
    request_id = info.data.get(REQUEST_ID)
    if value is not None and request_id is not None and value != request_id:
        raise PydanticCustomError(
            "id_conflict",
            "id and request_id differ ({id} vs {request_id}); send one of them",
            {"id": value, "request_id": request_id},
        )
    return value


@lru_cache(maxsize=32)
def features_model(description: ModelDescription) -> type[BaseModel]:
    """Return the pydantic model of a row's features alone (the base of the request and the forwarded row)."""
    fields: dict[str, Any] = {spec.name: _field_annotation(spec) for spec in description.features}
    return create_model(
        f"{_title(description.name)}Features",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"The features of one {description.name} request.",
        **fields,
    )


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part) or "Model"


@lru_cache(maxsize=32)
def request_model(description: ModelDescription) -> type[BaseModel]:
    """Return the pydantic model of one prediction request row, generated from the description."""

    def client_id(description: str) -> tuple[Any, Any]:
        annotation = Annotated[str | None, BeforeValidator(_id_text), WithJsonSchema(_id_schema(description))]
        return annotation, request_id_field(description, default=None)

    # `id` and `request_id` name one key: the schema says they are not both given (non-null); the service
    # also accepts both when they are equal, which JSON Schema cannot express.
    one_id = {
        "not": {
            "required": [REQUEST_ID, CLIENT_ID],
            "properties": {REQUEST_ID: {"not": {"type": "null"}}, CLIENT_ID: {"not": {"type": "null"}}},
        }
    }
    return create_model(
        f"{_title(description.name)}Request",
        __base__=features_model(description),
        __config__=ConfigDict(extra="forbid", json_schema_extra=one_id),
        __doc__=description.description or f"One row for the {description.name} model to predict.",
        __validators__={"same_id": field_validator(CLIENT_ID)(_same_id)},
        request_id=client_id("Client-chosen id, echoed back; generated when absent. An integer becomes its text."),
        id=client_id("Another name for request_id (the course's client sends `id`), same rule; both must agree."),
    )


def validate_request(description: ModelDescription, body: Any) -> BaseModel:
    """Validate one request row; raise pydantic's ValidationError on bad input."""
    return request_model(description).model_validate(body)


def split_unknown(description: ModelDescription, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (the keys a request row may carry, every other key) of one request object, in body order."""
    keys = request_keys(description)
    known, unknown = {}, {}
    for key, value in body.items():
        (known if key in keys else unknown)[key] = value
    return known, unknown


def ride_id(ride: BaseModel) -> str | None:
    """Return the client's id of a validated request row (`request_id`, or else `id`), or None."""
    return getattr(ride, REQUEST_ID, None) or getattr(ride, CLIENT_ID, None)


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
