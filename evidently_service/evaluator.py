"""Periodic evaluation of one model's window: drift, data quality, model quality and segments.

Each evaluation works on a snapshot of the window and ends by swapping one immutable
`EvaluationResult` into place, so a scrape never sees half of an evaluation and
ingestion never waits for one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from evidently_service.field_tally import FieldTally
from evidently_service.quality import (
    FeatureQuality,
    ReferenceProfile,
    data_quality,
    label_delays,
    labelled,
    model_quality,
)
from evidently_service.window import Window
from monitoring_core.drift import DriftEvaluator, DriftResult
from monitoring_core.monitoring_config import ModelConfig
from monitoring_core.reference import reference_model_version
from monitoring_core.segments import segment_of
from ride_duration.schema import PREDICTION, TARGET

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentResult:
    """One pickup borough's share of the window; drift and quality only when it holds enough rows."""

    rows: int
    labelled_rows: int
    drift: DriftResult | None
    quality: dict[str, float] | None


@dataclass(frozen=True)
class EvaluationResult:
    """One evaluation of a window; verdicts are None below the configured minimums."""

    computed_at: float
    duration_seconds: float
    window_rows: int
    labelled_rows: int
    drift: DriftResult | None = None
    data_quality: dict[str, FeatureQuality] | None = None
    model_quality: dict[str, float] | None = None
    label_delay: dict[float, float] = field(default_factory=dict)
    segments: dict[str, SegmentResult] = field(default_factory=dict)

    @property
    def label_coverage(self) -> float:
        """Return the share of window rows that have ground truth."""
        return self.labelled_rows / self.window_rows if self.window_rows else 0.0


@dataclass(frozen=True)
class ReferenceInfo:
    """Where the reference came from, so every exported number is traceable."""

    path: Path
    rows: int
    content_hash: str
    model_version: str


def reference_hash(reference: pd.DataFrame) -> str:
    """Return a short content hash of the reference rows (independent of the file's encoding)."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(reference, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


class ModelMonitor:
    """Window, reference and latest evaluation of one model; evaluates on demand or periodically."""

    def __init__(self, config: ModelConfig, reference: pd.DataFrame, model_version: str | None = None) -> None:
        self.config = config
        self.window = Window(config.window_size, config.max_pending_labels)
        self.reference = ReferenceInfo(
            path=config.reference_path,
            rows=len(reference),
            content_hash=reference_hash(reference),
            model_version=model_version or reference_model_version(config.reference_path),
        )
        self.drift = DriftEvaluator(reference, config.tests, config.dataset_drift_share, config.multiple_testing)
        self.profile = ReferenceProfile.of(reference)
        # Segment drift compares a borough's rows with the reference's rows of the same borough.
        self._segment_drift: dict[str, DriftEvaluator] = {}
        for segment, rows in reference.groupby(segment_of(reference)):
            if len(rows) < config.segment_min_rows:
                continue
            try:
                self._segment_drift[str(segment)] = DriftEvaluator(
                    rows, config.tests, config.dataset_drift_share, config.multiple_testing
                )
            except ValueError as exc:  # e.g. a column with no value in this borough's reference rows
                log.warning("no drift for segment", extra={"model": config.name, "segment": segment, "why": str(exc)})
        self.latest: EvaluationResult | None = None
        # Names of fields outside the schema that rows carried (top-K, since start): the schema-change signal.
        self.unknown_fields = FieldTally()
        self.counters: Counter[tuple[str, str]] = Counter()  # (metric, label) -> count
        self._counter_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: ModelConfig) -> ModelMonitor:
        """Load the reference named by `config` and build the monitor."""
        if not config.reference_path.exists():
            raise FileNotFoundError(
                f"no reference at {config.reference_path}: run `python -m ride_duration.train` or set REFERENCE_PATH"
            )
        return cls(config, pd.read_parquet(config.reference_path))

    def count(self, metric: str, label: str = "", amount: int = 1) -> None:
        """Add to one of the monitor's counters (rows received, rejected by reason, labels by result)."""
        if amount:
            with self._counter_lock:
                self.counters[(metric, label)] += amount

    def counter_values(self) -> dict[tuple[str, str], int]:
        """Return a copy of the counters."""
        with self._counter_lock:
            return dict(self.counters)

    def evaluate(self) -> EvaluationResult:
        """Evaluate the current window and publish the result."""
        started = time.perf_counter()
        window = self.window.snapshot()
        n = len(window)
        config = self.config
        rows_with_labels = labelled(window)
        kwargs: dict = {"label_delay": label_delays(rows_with_labels)}
        if n >= config.min_rows:
            kwargs["drift"] = self.drift.evaluate(window)
            kwargs["data_quality"] = data_quality(window, self.profile)
        if len(rows_with_labels) >= config.min_labelled_rows:
            kwargs["model_quality"] = model_quality(rows_with_labels[PREDICTION], rows_with_labels[TARGET])
        if n:
            kwargs["segments"] = self._segments(window)
        result = EvaluationResult(
            computed_at=time.time(),
            duration_seconds=time.perf_counter() - started,
            window_rows=n,
            labelled_rows=len(rows_with_labels),
            **kwargs,
        )
        self.latest = result  # one reference assignment: scrapes see the old or the new result, never a mix
        return result

    def _segments(self, window: pd.DataFrame) -> dict[str, SegmentResult]:
        config = self.config
        results = {}
        for segment, rows in window.groupby(segment_of(window)):
            with_labels = labelled(rows)
            evaluator = self._segment_drift.get(str(segment))
            drift = evaluator.evaluate(rows) if evaluator and len(rows) >= config.segment_min_rows else None
            quality = None
            if len(with_labels) >= config.segment_min_labelled_rows:
                quality = model_quality(with_labels[PREDICTION], with_labels[TARGET])
            results[str(segment)] = SegmentResult(len(rows), len(with_labels), drift, quality)
        return results

    def start(self) -> None:
        """Evaluate every `evaluation_period_seconds` in a daemon thread until `stop()`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"evaluate-{self.config.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.evaluate()
            except Exception:  # noqa: BLE001 - keep evaluating; the error is logged and counted
                log.exception("evaluation failed", extra={"model": self.config.name})
                self.count("evaluation_errors")
            if self._stop.wait(self.config.evaluation_period_seconds):
                return

    def stop(self) -> None:
        """Stop the evaluation thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
