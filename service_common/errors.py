"""The contract's JSON error body, for every error a client can cause."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def json_error(status: int, message: str, details: list[dict] | None = None) -> tuple[Response, int]:
    """Return `{"error": message, "details": [...]}` with `status`."""
    return jsonify({"error": message, "details": details or []}), status


def register_error_handlers(app: Flask) -> None:
    """Answer every HTTP error (404, 405, 413, ...) and every unexpected exception as JSON."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        reason = exc.name.lower().replace(" ", "_")
        field = "method" if exc.code == 405 else "body"
        response, status = json_error(
            exc.code or 500, exc.name.lower(), [{"field": field, "message": exc.description or "", "reason": reason}]
        )
        # Keep what the exception says beyond the body: 405 must list what is allowed (RFC 9110).
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # Logged once here, with the traceback; the client gets no internals.
        log.exception("unhandled error")
        return json_error(500, "internal error")
