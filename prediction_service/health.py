"""Dependency reachability for /health: checked in the background with tiny timeouts, answered from a cache."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import requests
from pymongo import MongoClient
from pymongo.collection import Collection

from monitoring_core.documents import missing_indexes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reachability:
    """The latest check of each dependency (None: not checked, or switched off)."""

    mongodb: bool | None = None
    metrics_service: bool | None = None
    checked_at: float | None = None
    # Names of the `predictions` indexes that do not exist (MongoDB came back empty, someone dropped them).
    indexes_missing: tuple[str, ...] | None = None


class DependencyProbe:
    """Checks MongoDB and the metrics service at most every `max_age` seconds, never on the request path."""

    def __init__(
        self, mongo: MongoClient | None, metrics_url: str | None, max_age: float, collection: Collection | None = None
    ) -> None:
        self._mongo = mongo
        self._collection = collection
        self._metrics_url = metrics_url
        self._max_age = max_age
        self._latest = Reachability()
        self._running = threading.Lock()

    def snapshot(self) -> Reachability:
        """Return the cached result, starting a refresh in the background when it is stale."""
        latest = self._latest
        stale = latest.checked_at is None or time.monotonic() - latest.checked_at > self._max_age
        if stale and self._running.acquire(blocking=False):
            threading.Thread(target=self._refresh, name="health-probe", daemon=True).start()
        return latest

    def _refresh(self) -> None:
        # Each check turns any exception into "unreachable": a probe that dies would leave /health at null.
        try:
            mongodb = self._check_mongo()
            missing = self._check_indexes() if mongodb else None
            self._latest = Reachability(mongodb, self._check_metrics(), time.monotonic(), missing)
        except Exception:  # noqa: BLE001 - belt and braces: never let the thread die with the lock held
            log.exception("health probe failed")
            self._latest = Reachability(False, False, time.monotonic())
        finally:
            self._running.release()

    def _check_mongo(self) -> bool | None:
        if self._mongo is None:
            return None
        try:
            self._mongo.admin.command("ping")
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means unreachable (pymongo's login raised KeyError)
            log.debug("mongodb probe failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return False

    def _check_indexes(self) -> tuple[str, ...] | None:
        if self._collection is None:
            return None
        try:
            return tuple(missing_indexes(self._collection))
        except Exception:  # noqa: BLE001 - unknown, not missing
            return None

    def _check_metrics(self) -> bool | None:
        if self._metrics_url is None:
            return None
        try:
            return requests.get(f"{self._metrics_url}/health", timeout=0.5).ok
        except Exception:  # noqa: BLE001 - any failure means unreachable
            return False

    def close(self) -> None:
        """Release the MongoDB client."""
        if self._mongo is not None:
            self._mongo.close()
