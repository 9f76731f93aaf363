"""Where served predictions and labels go: off, or asynchronously to MongoDB and the metrics service."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from monitoring_core.description import ModelDescription
from monitoring_core.records import forwarded_label
from prediction_service import metrics
from prediction_service.forwarder import Forwarder
from prediction_service.mongo_sink import MongoSink
from prediction_service.settings import Settings
from prediction_service.spool import Spool, SpoolStats
from prediction_service.wal import WriteAheadLog

log = logging.getLogger(__name__)


def utc_now_ms() -> datetime:
    """Return the current UTC time truncated to milliseconds (BSON's precision)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Monitoring:
    """Per-worker pipelines that take predictions and labels off the request path."""

    def __init__(self, settings: Settings, description: ModelDescription) -> None:
        self.settings = settings
        self.description = description
        self.spool = Spool(settings.spool_dir, settings.spool_capacity_records) if settings.log_to_mongodb else None
        self.sink: MongoSink | None = None
        self.rows: Forwarder | None = None
        self.labels: Forwarder | None = None
        base = f"{settings.evidently_service_url}"
        if settings.log_to_mongodb and self.spool is not None:
            wal = WriteAheadLog(settings.spool_dir / "wal", fsync=settings.wal_fsync) if settings.wal_enabled else None
            self.sink = MongoSink(settings, self.spool, wal, on_label_accepted=self._forward_labels)
        if settings.forward_to_metrics:
            common = dict(
                capacity=settings.forward_capacity,
                batch_size=settings.batch_size,
                flush_interval=settings.flush_interval_seconds,
                timeout=settings.forward_timeout_seconds,
                retries=settings.forward_retries,
                token=settings.monitoring_token,
            )
            self.rows = Forwarder(f"{base}/iterate/{description.name}", "forward", **common)
            self.labels = Forwarder(f"{base}/feedback/{description.name}", "feedback", **common)

    def start(self) -> None:
        """Start the background threads of this worker (they also start on first use)."""
        if self.sink is not None:
            self.sink.start()

    def record_predictions(self, docs: list[dict], rows: list[dict]) -> bool:
        """Hand prediction documents to MongoDB and rows to the metrics service, without waiting.

        Return False (nothing handed on) when `PREDICTION_UNLOGGED=refuse` and the documents cannot be logged.
        """
        if self.sink is not None and not self.sink.submit([{"op": "insert", "doc": doc} for doc in docs]):
            return False
        if self.rows is not None:
            self.rows.submit(rows)
        return True

    def logging_state(self) -> tuple[list[str], SpoolStats | None]:
        """Return why records cannot be logged now ([] when they can) and the spool's figures.

        Read from the spool folder (shared by every worker, so any worker answers the same) and from
        this worker's writer (a record it could not log in the last few seconds). Sets the spool gauges
        from the same reading, so /metrics and /health agree.
        """
        if self.spool is None or self.sink is None:
            return [], None
        stats = self.spool.stats()
        metrics.SPOOL_RECORDS.set(stats.records)
        metrics.SPOOL_CAPACITY.set(stats.capacity)
        metrics.SPOOL_FREE_BYTES.set(stats.free_bytes)
        metrics.SPOOL_USED_BYTES.set(stats.used_bytes)
        reasons = []
        if stats.records >= stats.capacity:
            reasons.append("spool_full" if stats.capacity >= stats.record_bound else "disk_full")
        problem = self.sink.logging_problem()
        if problem and problem not in reasons:
            reasons.append(problem)
        return reasons, stats

    def record_labels(self, records: list[dict]) -> bool:
        """Hand label records to the MongoDB writer, without waiting; False when labels fill their share of it.

        The writer decides which label of an id wins and forwards only winners. Without MongoDB
        logging nothing can decide, so labels go straight to the metrics service (its window
        keeps the first label of a row).
        """
        if self.sink is not None:
            return self.sink.submit_labels(records)
        self._forward_labels(records)
        return True

    def _forward_labels(self, records: list[dict]) -> None:
        # Called by the writer thread with the labels that won their document.
        if self.labels is not None and records:
            self.labels.submit(
                [
                    forwarded_label(self.description, r["request_id"], r["target"], r["target_timestamp"])
                    for r in records
                ]
            )

    def forwarding(self) -> dict[str, dict] | None:
        """Return how this worker's last forwards of rows and labels went (None when forwarding is off).

        The metrics service can answer its /health and still refuse every forward (another
        MONITORING_TOKEN, the model missing from its MODELS_DIR): only the forwards tell.
        """
        if self.rows is None or self.labels is None:
            return None
        return {"rows": self.rows.status(), "labels": self.labels.status()}

    def forward_refusal(self) -> str | None:
        """Return the metrics service's 4xx answer while it refuses this model's rows or labels (e.g. unknown model)."""
        for forwarder in (self.rows, self.labels):
            if forwarder is not None and forwarder.refused:
                return forwarder.refused
        return None

    def sizes(self) -> dict[str, int]:
        """Return the records waiting in this worker's queues and in the shared spool."""
        return {
            "mongo_queue": self.sink.size() if self.sink else 0,
            "pending_labels": len(self.sink.pending_labels) if self.sink else 0,
            "forward_queue": self.rows.size() if self.rows else 0,
            "feedback_queue": self.labels.size() if self.labels else 0,
            "spool_records": self.spool.size() if self.spool else 0,
        }

    def close(self) -> None:
        """Flush on shutdown: MongoDB records are written or spooled; rows get one last send."""
        for part in (self.rows, self.labels, self.sink):
            if part is not None:
                try:
                    part.close()
                except Exception:  # noqa: BLE001 - closing one part must not stop the others
                    log.exception("closing a monitoring pipeline failed")
