"""Shared-token protection for the endpoints that write monitoring data."""

from __future__ import annotations

import functools
import hmac
import os
from collections.abc import Callable, Mapping

from flask import current_app, request

from service_common.errors import json_error

TOKEN_CONFIG_KEY = "MONITORING_TOKEN"


def open_endpoints_warning(service: str, endpoints: str, environ: Mapping[str, str] | None = None) -> str:
    """Return the one start-up line saying that no token guards `endpoints` (and why: unset or empty)."""
    value = (os.environ if environ is None else environ).get(TOKEN_CONFIG_KEY)
    why = "MONITORING_TOKEN is unset" if value is None else "MONITORING_TOKEN is empty, treated as unset"
    return f"{service}: warning: {why}: {endpoints} accept(s) data from anyone; set it to require a bearer token"


def require_token(view: Callable) -> Callable:
    """Reject the request with 401 unless it carries `Authorization: Bearer <MONITORING_TOKEN>`.

    No token configured means no protection (the contract's default). The comparison is
    constant-time so the token cannot be guessed byte by byte from response times.
    """

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        expected = current_app.config.get(TOKEN_CONFIG_KEY)
        if expected:
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
                return json_error(
                    401,
                    "missing or wrong bearer token",
                    [
                        {
                            "field": "Authorization",
                            "message": "expected 'Bearer <MONITORING_TOKEN>'",
                            "reason": "unauthorized",
                        }
                    ],
                )
        return view(*args, **kwargs)

    return wrapped
