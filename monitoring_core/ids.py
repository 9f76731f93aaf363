"""The request id: the key that joins a prediction, its logged document, its forwarded row and its label."""

from __future__ import annotations

from typing import Any

from pydantic import Field

REQUEST_ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
REQUEST_ID_MAX_LENGTH = 128


def request_id_field(description: str, default: Any = ...) -> Any:
    """Return the pydantic Field of a request id: 1-128 characters of letters, digits and `_.:-`."""
    return Field(
        default=default,
        min_length=1,
        max_length=REQUEST_ID_MAX_LENGTH,
        pattern=REQUEST_ID_PATTERN,
        description=description,
    )
