"""The one JSON request-body reader of both services: content type and coding, size limit, JSON, nesting, unique keys.

Every failure is a `BodyError` carrying the status and the contract's reason, so each service
turns it into its own JSON error body and counter without re-deciding what is wrong.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge


class BodyError(Exception):
    """A body the service cannot read: `status` (400, 413 or 415), `reason` (a fixed label value), `message`."""

    def __init__(self, status: int, reason: str, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.field = field

    def detail(self) -> dict[str, str]:
        """Return the contract's `details` entry for this error."""
        return {"field": self.field, "message": self.message, "reason": self.reason}


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json's default is "last one wins": {"zone": 300, "zone": 43} would be served as 43,
    # while another parser (a proxy, a log reader) may see 300. Refuse what two readers can read differently.
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def is_json_type(mimetype: str) -> bool:
    """Return whether a media type is JSON (application/json or application/*+json)."""
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


# Content codings a body may come in (RFC 9110 8.4): none, or gzip (what HTTP clients compress with).
GZIP_CODINGS = ("gzip", "x-gzip")


def _coding(request: Request) -> str:
    """Return the body's content coding ("" for none), or raise BodyError for one this reader cannot undo."""
    codings = [c.strip().lower() for c in request.headers.get("Content-Encoding", "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return ""
    if len(codings) == 1 and codings[0] in GZIP_CODINGS:
        return "gzip"
    raise BodyError(
        415,
        "wrong_content_encoding",
        f"the body's Content-Encoding must be gzip or none, got {', '.join(codings)}",
        "Content-Encoding",
    )


def _gunzip(raw: bytes, limit: int | None) -> bytes:
    """Return a gzip body decompressed, refusing one whose content exceeds `limit` (a small bomb expands 1000-fold)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, limit + 1 if limit is not None else 0)
        whole = inflater.eof and not inflater.unconsumed_tail and not inflater.unused_data
    except zlib.error as exc:
        raise BodyError(
            400, "wrong_content_encoding", f"the body is not valid gzip: {exc}", "Content-Encoding"
        ) from None
    if limit is not None and len(data) > limit:
        raise BodyError(413, "too_large", f"the limit is {limit} bytes, decompressed")
    if not whole:
        message = "the gzip body is cut short" if not inflater.eof else "the body goes on after its gzip stream"
        raise BodyError(400, "wrong_content_encoding", message, "Content-Encoding")
    return data


def read_json_body(request: Request) -> Any:
    """Return the parsed JSON body of `request` (gzip-compressed or not), or raise BodyError."""
    mimetype = request.mimetype or ""
    if not is_json_type(mimetype):
        raise BodyError(
            415, "wrong_content_type", f"expected application/json, got {mimetype or 'nothing'}", "Content-Type"
        )
    coding = _coding(request)
    limit = request.max_content_length
    too_large = BodyError(413, "too_large", f"the limit is {limit} bytes")
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise too_large from None
    # A chunked body (no Content-Length) is cut at the limit rather than refused: treat reaching it as over.
    if limit is not None and request.content_length is None and len(raw) >= limit:
        raise too_large
    if coding:
        raw = _gunzip(raw, limit)  # the limit holds for what the body expands to as well
    if not raw.strip():
        # What a client gets that sends its body without Content-Length or chunked framing (HTTP reads none).
        raise BodyError(400, "invalid_json", "the body is empty: send JSON, framed by Content-Length or chunked")
    try:
        # NaN/Infinity tokens parse (Python's json allows them) so validation can name the field as not finite.
        return json.loads(raw, object_pairs_hook=_unique_keys)
    except RecursionError:  # a deeply nested body exhausts the parser's stack
        raise BodyError(400, "invalid_json", "nested too deeply") from None
    except _DuplicateKey as exc:
        raise BodyError(400, "duplicate_key", f"the key {exc.key!r} appears twice in one object", exc.key) from None
    except ValueError as exc:
        raise BodyError(400, "invalid_json", str(exc)) from None
