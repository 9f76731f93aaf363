"""Fields a ride carries outside the schema: the bounded copy kept on the logged document, and their names.

A whole TLC row sent as a ride (the course's client does this) has 15 such fields. They are
not an error by default (`UNKNOWN_FIELDS=keep`): the prediction is made from the schema's
fields, the others are kept under one key of the logged document, and their names travel
with the forwarded row so the metrics service can say which new fields appear. Everything
here is bounded so no client can grow a document, a row or a label set without limit, and
everything kept can be written to MongoDB (BSON) whatever the client sent.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

# The key of the logged document that holds the kept fields ({name: value}).
EXTRA_FIELDS = "extra_fields"
# The key of the forwarded row that lists their names.
UNKNOWN_FIELDS = "unknown_fields"

MAX_FIELDS = 50  # names kept (and forwarded) per ride; the rest are counted as dropped
MAX_NAME_CHARS = 64  # a longer name is cut
MAX_VALUE_CHARS = 256  # a longer string (or the JSON text of an array / object) is cut
# MongoDB keys must not hold NUL, start with `$` or contain `.` (the last two are legal in
# MongoDB 5+, but every query tool trips on them); those characters become `_`.
_UNSAFE = re.compile(r"[\x00.$]")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class UnknownFields:
    """The unknown fields of one ride: the kept copy (name -> value), their names in body order, how many dropped."""

    kept: dict[str, Any] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    dropped: int = 0

    @property
    def seen(self) -> int:
        """Return how many unknown fields the ride carried."""
        return len(self.names) + self.dropped


NONE = UnknownFields()


def _text(value: str) -> str:
    # A lone surrogate (valid in JSON's \\ud800, not in UTF-8) cannot be stored: replace it.
    return value.encode("utf-8", "replace").decode("utf-8")[:MAX_VALUE_CHARS]


def field_name(name: str) -> str:
    """Return `name` as it is stored and reported: cut to 64 characters, NUL, `.` and `$` replaced by `_`."""
    return _UNSAFE.sub("_", _text(name))[:MAX_NAME_CHARS] or "_"


def field_value(value: Any) -> Any:
    """Return a value as it is kept: JSON scalars as sent (strings cut), arrays and objects as cut JSON text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        # NaN and +-Infinity (Python's JSON reader takes them) are not storable in every BSON store
        # (nx-27017 refuses the document): kept as their JSON text, as an out-of-range integer is.
        return value if math.isfinite(value) else json.dumps(value)
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else _text(str(value))
    if isinstance(value, str):
        return _text(value)
    try:
        return _text(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError, RecursionError):
        return _text(repr(value))


def bound_unknown(extras: dict[str, Any], keep: bool) -> UnknownFields:
    """Return the bounded view of a ride's unknown fields; values are copied only when `keep`."""
    if not extras:
        return NONE
    kept: dict[str, Any] = {}
    names: list[str] = []
    dropped = 0
    for raw, value in extras.items():
        name = field_name(raw)
        if len(names) >= MAX_FIELDS or name in kept or name in names:
            dropped += 1
            continue
        names.append(name)
        if keep:
            kept[name] = field_value(value)
    return UnknownFields(kept=kept, names=tuple(names), dropped=dropped)
