"""Which gunicorn worker class serves, and the gevent patching it needs (importable before gunicorn itself)."""

from __future__ import annotations

import sys

# gevent (the default): every connection is a greenlet, so idle and slow clients cost memory, not a
# serving thread, and a request head must arrive within `keepalive` seconds. gthread: the previous
# setup, kept for comparison (`python -m bench slow_clients`) and for a deployment behind a buffering proxy.
WORKER_CLASSES = ("gevent", "gthread")

# Imported by the standard library's users that the app pulls in: patching after them is too late
# (gevent's documented trap: `ssl` patched after import breaks TLS contexts, e.g. pymongo with tls=true).
_PATCH_FIRST = ("ssl", "gunicorn", "pymongo", "requests", "urllib3", "flask")


def worker_class(env_value: str | None, name: str = "WORKER_CLASS") -> str:
    """Return the worker class named by an environment value (default gevent); raise ValueError naming `name`."""
    value = (env_value or "gevent").strip().lower()
    if value not in WORKER_CLASSES:
        raise ValueError(f"{name} must be one of {', '.join(WORKER_CLASSES)}, got {env_value!r}")
    return value


def prepare_process(worker_class_name: str) -> None:
    """Monkey-patch the standard library for gevent, before the app or gunicorn is imported (gthread: nothing).

    Patched in the master, before the fork: the workers' background threads (MongoDB writer,
    forwarder, health probe, the metrics service's evaluators) become greenlets, and pymongo and
    requests block cooperatively. gunicorn's worker patches again after the fork (a no-op by then).
    """
    if worker_class_name != "gevent":
        return
    late = [name for name in _PATCH_FIRST if name in sys.modules]
    if late:
        raise RuntimeError(f"gevent must patch before {', '.join(late)} is imported: call prepare_process first")
    from gevent import monkey

    monkey.patch_all()
