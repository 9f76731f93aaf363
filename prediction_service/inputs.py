"""Read and validate request bodies: content type, size, JSON, one row or a batch; errors name the field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Request
from pydantic import BaseModel, ValidationError

from monitoring_core.description import REQUEST_ID, ModelDescription
from monitoring_core.unknown_fields import NONE, UnknownFields, bound_unknown
from monitoring_core.validation import CLIENT_ID, error_details, ride_id, split_unknown, validate_request
from service_common.body import BodyError, read_json_body

_BODY_MESSAGES = {
    "wrong_content_type": "unsupported content type",
    "wrong_content_encoding": "unsupported content encoding",
    "too_large": "body too large",
    "invalid_json": "invalid JSON",
    "duplicate_key": "duplicate key in a JSON object",
}


class InputError(Exception):
    """A client error: answered as the contract's JSON error body and counted by reason."""

    def __init__(self, status: int, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    @property
    def reasons(self) -> set[str]:
        """Return the distinct reasons of the problems found."""
        return {d.get("reason", "invalid_value") for d in self.details} or {"invalid_value"}


def _problem(field: str, message: str, reason: str) -> dict[str, str]:
    return {"field": field, "message": message, "reason": reason}


def read_json(request: Request) -> Any:
    """Return the parsed JSON body or raise InputError (415 content type, 413 size, 400 invalid JSON)."""
    try:
        return read_json_body(request)
    except BodyError as exc:
        raise InputError(exc.status, _BODY_MESSAGES.get(exc.reason, "invalid body"), [exc.detail()]) from None


def as_items(body: Any, max_rows: int, what: str) -> tuple[list[Any], bool]:
    """Return (items, is_batch) for a JSON object or a non-empty list of at most `max_rows` objects."""
    if isinstance(body, dict):
        return [body], False
    if isinstance(body, list):
        if not body:
            raise InputError(400, f"empty list of {what}", [_problem("body", "send at least one", "invalid_value")])
        if len(body) > max_rows:
            raise InputError(
                400,
                f"too many {what}",
                [_problem("body", f"{len(body)} items; the limit is {max_rows} per call", "too_many_rows")],
            )
        return body, True
    raise InputError(
        400,
        "body must be a JSON object or a list of objects",
        [_problem("body", f"got a JSON {type(body).__name__}", "not_an_object")],
    )


def validate_items(
    items: list[Any], is_batch: bool, validate: Callable[[Any], BaseModel], what: str
) -> list[BaseModel]:
    """Validate every item; a batch with any invalid item is rejected whole, fields prefixed by their index."""
    models: list[BaseModel] = []
    details: list[dict[str, str]] = []
    for index, item in enumerate(items):
        prefix = f"{index}." if is_batch else ""
        if not isinstance(item, dict):
            details.append(_problem(prefix.rstrip(".") or "body", "must be a JSON object", "not_an_object"))
            continue
        try:
            models.append(validate(item))
        except ValidationError as exc:
            details.extend(error_details(exc, prefix))
    if details:
        raise InputError(400, f"invalid {what}", details)
    return models


def _duplicate_ids(models: list[BaseModel], is_batch: bool) -> list[dict[str, str]]:
    seen: set[str] = set()
    details = []
    for index, model in enumerate(models):
        request_id = ride_id(model)
        if request_id is None:
            continue
        if request_id in seen:
            key = REQUEST_ID if getattr(model, REQUEST_ID, None) else CLIENT_ID
            details.append(
                _problem(
                    f"{index}.{key}" if is_batch else key, f"{request_id!r} appears twice in this call", "invalid_value"
                )
            )
        seen.add(request_id)
    return details


@dataclass(frozen=True)
class RowInput:
    """One validated request row and the fields it carried outside the model's."""

    row: BaseModel
    unknown: UnknownFields = NONE


def parse_rows(
    request: Request, description: ModelDescription, max_rows: int, unknown_fields: str = "keep"
) -> tuple[list[RowInput], bool]:
    """Return the validated rows of a /predict body and whether it was a batch.

    `unknown_fields` is the UNKNOWN_FIELDS policy: `reject` validates the whole object (an unknown
    field is a 400 `unknown_field`); `keep` and `ignore` validate the description's keys and set the
    others aside (bounded), keeping their values only with `keep`.
    """
    items, is_batch = as_items(read_json(request), max_rows, "rows")
    extras: list[dict[str, Any]] = []
    if unknown_fields != "reject":
        split = [split_unknown(description, item) if isinstance(item, dict) else (item, {}) for item in items]
        items, extras = [known for known, _ in split], [unknown for _, unknown in split]
    rows = validate_items(items, is_batch, lambda body: validate_request(description, body), "row")
    repeated = _duplicate_ids(rows, is_batch)
    if repeated:
        # 409, not 400: every row is valid on its own (the schema cannot say "ids unique"), they conflict.
        raise InputError(409, "request_id used twice in one call", repeated)
    if not extras:
        return [RowInput(row) for row in rows], is_batch
    keep = unknown_fields == "keep"
    return [RowInput(row, bound_unknown(unknown, keep)) for row, unknown in zip(rows, extras, strict=True)], is_batch
