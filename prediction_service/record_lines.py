"""The one line format of the write-ahead log and the spool: a record per line, as base64 BSON.

Every answered request appends its records to the write-ahead log before it is answered, so their
encoding is on the request path. BSON through pymongo's C extension takes about 3 us per logged
document where extended JSON (`bson.json_util`, pure Python) took about 60 us, and it keeps what
MongoDB will be given bit for bit (int or float, datetimes to the millisecond). Base64 keeps it one
line per record, so a damaged line costs only its own record. A record BSON cannot encode (an
integer over 64 bits, a value of no BSON type) is written as extended JSON instead, and the
dead-letter file still gets it; lines of either kind are read back, so logs written by earlier
versions (extended JSON throughout) are replayed too.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC
from typing import Any

import bson
from bson import json_util
from bson.codec_options import CodecOptions
from bson.errors import BSONError

_JSON = json_util.RELAXED_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=UTC)
_CODEC = CodecOptions(tz_aware=True, tzinfo=UTC)


def encode_lines(records: list[Any]) -> bytes:
    """Return `records` as lines, one per record."""
    return b"".join(_line(record) for record in records)


def _line(record: Any) -> bytes:
    try:
        return base64.b64encode(bson.encode(record, codec_options=_CODEC)) + b"\n"
    except (BSONError, OverflowError, TypeError, ValueError):  # not BSON-encodable: its JSON, to be quarantined
        return (json_util.dumps(record, json_options=_JSON) + "\n").encode()


def decode_line(raw: bytes) -> Any:
    """Return the record of one line; ValueError when the line is damaged."""
    raw = raw.strip()
    try:
        if raw.startswith(b"{"):
            return json_util.loads(raw.decode("utf-8"), json_options=_JSON)
        return bson.decode(base64.b64decode(raw, validate=True), codec_options=_CODEC)
    except (ValueError, TypeError, RecursionError, binascii.Error, BSONError, IndexError, KeyError) as exc:
        raise ValueError(f"damaged record line: {type(exc).__name__}") from None
