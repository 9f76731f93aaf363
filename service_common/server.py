"""Run a Flask app factory under gunicorn, configured in code (used by each `__main__`).

Import it only after `service_common.workers.prepare_process` (gevent must patch before gunicorn imports `ssl`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication


class GunicornApp(BaseApplication):
    """A gunicorn application whose config is a dict and whose app comes from a factory."""

    def __init__(self, app_factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self._factory = app_factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self):
        return self._factory()


# What both services want unless they say otherwise.
DEFAULT_OPTIONS: dict[str, Any] = {
    # gthread whose event loop reads each request (head within 5 s, a body of known length up to
    # 1 MiB within 10 s more) before a pool thread gets it: idle and slow connections never hold a
    # serving thread (stock gthread hands each new connection to one; docs/reliability.md).
    "worker_class": "service_common.buffered_worker.BufferingThreadWorker",
    # Per worker, the most connections open at once (idle ones included): past it the worker stops
    # accepting until some close. The limit an attacker with many sockets can still reach.
    "worker_connections": 1000,
    "keepalive": 5,
    "accesslog": None,  # request logs would be one line per prediction; metrics count requests instead
    # gunicorn 27 otherwise opens a control socket at one fixed path shared by every instance.
    "control_socket_disable": True,
}


def closing_worker_exit(extension: str) -> Callable[[Any, Any], None]:
    """Return a gunicorn `worker_exit` hook that calls `close()` on the exiting worker's `app.extensions[extension]`."""

    def worker_exit(server: Any, worker: Any) -> None:  # noqa: ARG001 - gunicorn's hook signature
        app = getattr(worker, "wsgi", None)
        state = getattr(app, "extensions", {}).get(extension) if app is not None else None
        if state is not None:
            state.close()

    return worker_exit


def serve(app_factory: Callable[[], Any], options: dict[str, Any]) -> None:
    """Start gunicorn with `options` (bind, workers, threads, hooks...) over the defaults, serving `app_factory()`."""
    loglevel = os.environ.get("LOG_LEVEL", "warning").lower()
    GunicornApp(app_factory, {**DEFAULT_OPTIONS, "loglevel": loglevel, **options}).run()
