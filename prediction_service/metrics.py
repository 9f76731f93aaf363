"""The service's Prometheus metrics (catalogue: docs/metrics.md), multiprocess-safe under gunicorn.

Gauges carry a multiprocess mode: per-worker queues are summed over live workers, the
shared spool directory is seen identically by every worker, so its gauges take the max.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter("prediction_http_requests_total", "HTTP requests answered.", ["endpoint", "method", "status"])
HTTP_LATENCY = Histogram(
    "prediction_http_request_duration_seconds",
    "Request latency measured in the server, from the request's arrival to its response.",
    ["endpoint", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PREDICTIONS = Counter(
    "prediction_predictions_total", "Predictions served; a batch call counts each row.", ["model", "model_version"]
)
PREDICTED_DURATION = Histogram(
    "prediction_predicted_duration_seconds",
    "Distribution of the predicted duration, for a regression model whose prediction unit is a time "
    "(seconds, minutes or hours in its description).",
    ["model"],
    buckets=(60, 180, 300, 450, 600, 900, 1200, 1500, 1800, 2400, 3000, 3600, 5400),
)
PREDICTED_CLASSES = Counter(
    "prediction_predicted_class_total",
    "Predictions served by a classification model, by predicted class (the description's classes).",
    ["model", "class"],
)
REJECTED_INPUTS = Counter(
    "prediction_rejected_inputs_total",
    "Rejected request bodies, counted once per distinct reason found in the body.",
    ["endpoint", "reason"],
)
UNKNOWN_FIELDS = Counter(
    "prediction_unknown_fields_total",
    "Fields outside the model's description in served rows, by outcome: kept on the logged document, ignored "
    "(UNKNOWN_FIELDS=ignore), or dropped over the per-row bound; field names are in the log and in the "
    "metrics service's evidently_unknown_field_rows.",
    ["model", "outcome"],
)
MODEL_INFO = Gauge(
    "prediction_model_info",
    "Always 1: the model version the workers serve.",
    ["model", "model_version"],
    multiprocess_mode="livemax",
)
QUEUE_SIZE = Gauge(
    "prediction_queue_size",
    "Records waiting in an in-memory queue, summed over workers.",
    ["queue"],
    multiprocess_mode="livesum",
)
QUEUE_CAPACITY = Gauge(
    "prediction_queue_capacity",
    "Capacity of an in-memory queue, summed over workers.",
    ["queue"],
    multiprocess_mode="livesum",
)
# The spool gauges are set from the spool folder when /metrics is scraped (the same listing /health reads),
# by whichever worker answers: the most recent value is the truth, whatever worker set it.
SPOOL_RECORDS = Gauge(
    "prediction_spool_records",
    "Records waiting in the on-disk spool for MongoDB, read from the spool folder at scrape time.",
    multiprocess_mode="livemostrecent",
)
SPOOL_CAPACITY = Gauge(
    "prediction_spool_capacity_records",
    "Records the spool can hold: PREDICTION_SPOOL_CAPACITY_RECORDS or what its filesystem's free space "
    "holds (at the measured bytes per spooled record), whichever is smaller; read at scrape time.",
    multiprocess_mode="livemostrecent",
)
SPOOL_FREE_BYTES = Gauge(
    "prediction_spool_free_bytes",
    "Free bytes of the filesystem holding the spool and the write-ahead logs, read at scrape time.",
    multiprocess_mode="livemostrecent",
)
SPOOL_USED_BYTES = Gauge(
    "prediction_spool_used_bytes",
    "Bytes allocated to spool segments and write-ahead logs, read at scrape time.",
    multiprocess_mode="livemostrecent",
)
LOG_WRITABLE = Gauge(
    "prediction_log_writable",
    "1 while every worker can get its records into MongoDB or the spool, 0 while one cannot (disk or "
    "spool full during a MongoDB outage, or the write-ahead log failing); minimum over workers.",
    multiprocess_mode="livemin",
)
MODEL_ERRORS = Counter(
    "prediction_model_errors_total",
    "Rows of valid requests the model gave no usable answer for (answered 500, neither logged nor forwarded), "
    "by reason: raised, or unusable_answer (NaN, infinity, None, a class outside the description's).",
    ["model", "reason"],
)
QUARANTINED = Counter(
    "prediction_records_quarantined_total",
    "Records MongoDB (or the driver) refused for what they are, moved to the dead-letter file instead of "
    "being retried, by reason.",
    ["reason"],
)
UNLOGGED_REFUSED = Counter(
    "prediction_unlogged_refused_total",
    "Predictions answered 503 because their log could not be written (PREDICTION_UNLOGGED=refuse).",
)
MONGO_WRITES = Counter("prediction_mongo_writes_total", "Batch writes to MongoDB by result.", ["result"])
MONGO_WRITTEN = Counter(
    "prediction_mongo_written_records_total", "Prediction documents written to MongoDB (duplicates excluded)."
)
DROPPED = Counter("prediction_records_dropped_total", "Records lost, by queue and reason.", ["queue", "reason"])
FORWARDED = Counter("prediction_forwarded_rows_total", "Rows sent to the metrics service by result.", ["result"])
INDEXES_MISSING = Gauge(
    "prediction_mongo_indexes_missing",
    "Indexes of the predictions collection found missing at the last check (0 when all exist); rechecked "
    "after every new connection and every PREDICTION_INDEX_CHECK_SECONDS.",
    multiprocess_mode="livemax",
)
WAL_ERRORS = Counter(
    "prediction_wal_errors_total", "Requests whose records could not be appended to the write-ahead log."
)
WAL_RECOVERED = Counter(
    "prediction_wal_recovered_records_total",
    "Records recovered from a dead worker's write-ahead log into the spool (replayed idempotently).",
)
FEEDBACK = Counter(
    "prediction_feedback_total",
    "Ground-truth labels by outcome: queued, duplicate, invalid when /feedback answers; "
    "accepted, duplicate, unknown when MongoDB has decided.",
    ["result"],
)
PENDING_LABELS = Gauge(
    "prediction_pending_labels",
    "Labels that found no prediction document yet, waiting in the writers for a retry (sum over workers).",
    multiprocess_mode="livesum",
)
PENDING_LABELS_CAPACITY = Gauge(
    "prediction_pending_labels_capacity",
    "How many labels the writers keep waiting for their prediction (sum over workers).",
    multiprocess_mode="livesum",
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@functools.lru_cache(maxsize=1024)
def request_series(endpoint: str, method: str, status: str) -> tuple[Any, Any]:
    """Return the request counter and latency histogram children for one label set, looked up once.

    `.labels()` takes a lock and builds a key on every call; the label values are bounded (route
    templates, a fixed method set, status codes), so the children are cached for the worker's life.
    """
    return HTTP_REQUESTS.labels(endpoint, method, status), HTTP_LATENCY.labels(endpoint, method)


def render() -> tuple[bytes, str]:
    """Return the exposition text and its content type, merged over workers in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
