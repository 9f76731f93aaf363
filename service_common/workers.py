"""Which gunicorn worker class serves, and the gevent patching it needs (importable before gunicorn itself)."""

from __future__ import annotations

import importlib
import sys

# buffered (the default): gthread whose event loop reads each request before a pool thread gets it
# (service_common/buffered_worker.py), so idle and slow clients never hold a serving thread.
# gthread: the previous setup, starved by them. gevent: measured as the alternative (a greenlet per
# connection; 0.39x the predictions per second with monitoring on, docs/reliability.md). The last two are
# kept for comparison (`python -m bench reliability`, `python -m bench prediction_load`); gevent is
# test tooling in requirements.txt, not installed in the images.
WORKER_CLASSES = ("buffered", "gthread", "gevent")
GUNICORN_WORKER_CLASS = {
    "buffered": "service_common.buffered_worker.BufferingThreadWorker",
    "gthread": "gthread",
    "gevent": "gevent",
}

# Imported by the standard library's users that the app pulls in: patching after them is too late
# (gevent's documented trap: `ssl` patched after import breaks TLS contexts, e.g. pymongo with tls=true).
_PATCH_FIRST = ("ssl", "gunicorn", "pymongo", "requests", "urllib3", "flask")


def prepare_process(worker_class_name: str) -> None:
    """Monkey-patch the standard library for gevent, before the app or gunicorn is imported (others: nothing).

    Patched in the master, before the fork: the workers' background threads (MongoDB writer,
    forwarder, health probe, the metrics service's evaluators) become greenlets, and pymongo and
    requests block cooperatively. gunicorn's worker patches again after the fork (a no-op by then).
    """
    if worker_class_name != "gevent":
        return
    late = [name for name in _PATCH_FIRST if name in sys.modules]
    if late:
        raise RuntimeError(f"gevent must patch before {', '.join(late)} is imported: call prepare_process first")
    try:
        # Imported by name: an optional package the images leave out on purpose, so the images'
        # import check (tests/containers) must not count it as one they need.
        monkey = importlib.import_module("gevent.monkey")
    except ImportError:
        raise RuntimeError(
            "WORKER_CLASS=gevent needs the gevent package (benchmark tooling, not in the images)"
        ) from None
    monkey.patch_all()
