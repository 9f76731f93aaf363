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
    ModelQuality,
    ReferenceProfile,
    data_quality,
    label_delays,
    labelled,
    model_quality,
)
from evidently_service.window import Window
from monitoring_core.calibration import MIN_BUCKET, CalibrationCache, cache_path_for
from monitoring_core.drift import DriftResult, family_flags
from monitoring_core.estimation import Estimate, EstimatorError, Gap, PerformanceEstimator, load_estimator
from monitoring_core.model_folder import ModelFolder
from monitoring_core.monitoring_config import ModelConfig
from monitoring_core.prepare import load_prepared
from monitoring_core.reference import read_reference, reference_model_version
from monitoring_core.reference_check import check_reference
from monitoring_core.reference_data import evaluators_for

log = logging.getLogger(__name__)


# Window rows data quality waits for when the reference is too small for drift (no derived minimum).
DATA_QUALITY_ROWS = 100


@dataclass(frozen=True)
class SegmentResult:
    """One segment's share of the window; drift and quality only when it holds enough rows."""

    rows: int
    labelled_rows: int
    drift: DriftResult | None
    quality: ModelQuality | None
    min_rows: int | None = None  # rows the segment's drift verdict needs (None: none is enough, or unknown)


@dataclass(frozen=True)
class EvaluationResult:
    """One evaluation of a window; verdicts are None below the minimums."""

    computed_at: float
    duration_seconds: float
    window_rows: int
    labelled_rows: int
    min_rows: int | None = None  # rows the drift and data-quality verdicts need (None: no size is enough)
    drift: DriftResult | None = None
    data_quality: dict[str, FeatureQuality] | None = None
    model_quality: ModelQuality | None = None
    label_delay: dict[float, float] = field(default_factory=dict)
    segments: dict[str, SegmentResult] = field(default_factory=dict)
    # Quality estimated from every window row, labelled or not (monitoring_core/estimation.py), and over the
    # labelled rows realised minus estimated: a realised value outside its band hints at concept drift.
    estimate: Estimate | None = None
    gaps: dict[str, Gap] = field(default_factory=dict)
    # (segment, feature) -> flagged, under one Holm correction over every segment x feature judged
    # (monitoring_core/drift.py `family_flags`): on clean data any flag at all comes at most at the dataset rate.
    segment_flags: dict[tuple[str, str], bool] = field(default_factory=dict)

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
    duplicates_dropped: int = 0


def reference_hash(reference: pd.DataFrame) -> str:
    """Return a short content hash of the reference rows (independent of the file's encoding)."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(reference, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


class ModelMonitor:
    """Window, reference and latest evaluation of one model; evaluates on demand or periodically."""

    def __init__(
        self,
        config: ModelConfig,
        reference: pd.DataFrame,
        model_version: str | None = None,
        cache: CalibrationCache | None = None,
    ) -> None:
        """Build the window and the evaluators; `cache` holds calibrated thresholds (default: beside the reference)."""
        self.config = config
        self.description = config.description
        self.window = Window(config.description, config.window_size, config.max_pending_labels)
        # Thresholds are simulated lazily, per size bucket, on first need, unless `prepare` computed them
        # (the cache then comes from prepared/calibration.json); monitoring_core/calibration.py.
        if cache is None and config.calibration is not None:
            cache = CalibrationCache(cache_path_for(config.reference_path))
        self.prepared = False
        evaluators = evaluators_for(
            config,
            reference,
            cache,
            on_segment_error=lambda segment, why: log.warning(
                "no drift for segment", extra={"model": config.name, "segment": segment, "why": why}
            ),
        )
        self.reference = ReferenceInfo(
            path=config.reference_path,
            rows=len(reference),
            content_hash=reference_hash(reference),
            model_version=model_version or reference_model_version(config.reference_path),
            duplicates_dropped=evaluators.duplicates_dropped,
        )
        if evaluators.duplicates_dropped:
            log.warning(
                "reference rows repeated exactly were dropped before calibrating drift",
                extra={
                    "model": config.name,
                    "dropped": evaluators.duplicates_dropped,
                    "kept": len(evaluators.reference),
                },
            )
        self.drift = evaluators.drift
        self.profile = ReferenceProfile.of(config.description, evaluators.reference)
        self._segment_drift = evaluators.segments
        self._usable = {c: int(evaluators.reference[c].notna().sum()) for c in self.drift.features}
        # Features whose reference cannot calibrate a verdict at any window size; None until derived.
        self.reference_too_small: dict[str, bool] | None = None
        self.latest: EvaluationResult | None = None
        # The performance estimator `prepare` fitted (None: not prepared, stale, or the model gives no
        # probabilities; `estimation_reason` says which).
        self.estimator: PerformanceEstimator | None = None
        self.estimation_reason: str | None = "not prepared (run python -m monitoring_core.prepare)"
        # Names of fields outside the schema that rows carried (top-K, since start): the schema-change signal.
        self.unknown_fields = FieldTally()
        self.counters: Counter[tuple[str, str]] = Counter()  # (metric, label) -> count
        self._counter_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def min_rows(self) -> int | None:
        """Return the window rows drift and data-quality verdicts need: derived, raised by `min_rows` if set."""
        return _at_least(self.drift.min_rows, self.config.min_rows)

    def segment_min_rows(self, segment: str) -> int | None:
        """Return the segment rows its drift verdict needs (None: no reference slice, or none is enough)."""
        evaluator = self._segment_drift.get(segment)
        return _at_least(evaluator.min_rows, self.config.segment_min_rows) if evaluator else None

    @classmethod
    def from_config(cls, config: ModelConfig, folder: ModelFolder | None = None) -> ModelMonitor:
        """Load and check the reference named by `config`, read the folder's prepared calibration, build the monitor.

        DescriptionError (one line naming the file and the column) when the reference does not fit the description.
        """
        reference = read_reference(config.reference_path)
        check_reference(config.description, reference, str(config.reference_path))
        cache = None
        if folder is not None and config.calibration is not None:
            cache = load_prepared(folder)
            if cache is None:
                log.warning(
                    "drift calibration not prepared (or stale): thresholds are calibrated lazily at the first "
                    "evaluations; run `python -m monitoring_core.prepare %s` to start with them",
                    folder.path,
                    extra={"model": config.name},
                )
        monitor = cls(config, reference, cache=cache)
        if folder is not None:
            monitor.use_estimator(folder)
        if cache is not None:
            monitor.prepared = True
            monitor.check_reference_size()  # every minimum is in the prepared file: no simulation here
        return monitor

    def use_estimator(self, folder: ModelFolder) -> None:
        """Load the folder's prepared performance estimator; say once why there is none."""
        try:
            estimator = load_estimator(folder)
        except EstimatorError as exc:
            self.estimator, self.estimation_reason = None, str(exc)
        else:
            ready = estimator.reason is None
            self.estimator, self.estimation_reason = (estimator if ready else None), estimator.reason
        if self.estimator is None:
            log.warning(
                "no quality estimate before labels: %s", self.estimation_reason, extra={"model": self.config.name}
            )

    def check_reference_size(self) -> dict[str, bool]:
        """Derive (once) which features the reference is too small to calibrate, and say so once in the log."""
        if self.reference_too_small is None:
            too_small = {c: self.drift.min_rows_of(c) is None for c in self.drift.features}
            self.reference_too_small = too_small
            small = [c for c, bad in too_small.items() if bad]
            if small:
                usable = {c: self._usable[c] for c in small}
                log.warning(
                    "reference too small to calibrate drift of %s: no window size up to twice the reference "
                    "gets a verdict; each needs more usable reference values than it has (%s)",
                    ", ".join(small),
                    ", ".join(f"{c}: needs > {n}" for c, n in usable.items()),
                    extra={"model": self.config.name, "features": small},
                )
        return self.reference_too_small

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
        target = self.description.target_column
        rows_with_labels = labelled(window, target)
        min_rows = self.min_rows
        self.check_reference_size()
        kwargs: dict = {"label_delay": label_delays(rows_with_labels), "min_rows": min_rows}
        if min_rows is not None and n >= min_rows:
            kwargs["drift"] = self.drift.evaluate(window)
            kwargs["data_quality"] = data_quality(window, self.profile)
        elif min_rows is None and n >= (config.min_rows or DATA_QUALITY_ROWS):
            # A reference too small for any drift verdict (evidently_reference_too_small) still has ranges and
            # categories: missing, out-of-range and unseen shares need no calibration. Silence would hide them.
            kwargs["data_quality"] = data_quality(window, self.profile)
        if len(rows_with_labels) >= config.min_labelled_rows:
            kwargs["model_quality"] = model_quality(self.description, rows_with_labels)
        if self.estimator is not None and n:
            kwargs["estimate"] = self.estimator.estimate(window)
            if "model_quality" in kwargs:
                realised = kwargs["model_quality"].metrics
                kwargs["gaps"] = self.estimator.estimate(rows_with_labels).gaps(realised)
        if n:
            kwargs["segments"] = self._segments(window)
            judged = {s: r.drift for s, r in kwargs["segments"].items() if r.drift is not None}
            if judged and config.calibration is not None:
                kwargs["segment_flags"] = family_flags(judged, config.calibration.dataset_false_alarm_rate)
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
        if self.description.segment is None:
            return {}
        for segment, rows in window.groupby(self.description.segment_of(window)):
            with_labels = labelled(rows, self.description.target_column)
            evaluator = self._segment_drift.get(str(segment))
            # The minimum is derived (and cached) once the segment has rows to judge. Its features are judged
            # from the smallest feature minimum on, each at its own (`family_flags`); the segment's drifted
            # share waits for them all (`min_rows`).
            min_rows = self.segment_min_rows(str(segment)) if len(rows) >= MIN_BUCKET else None
            first = _at_least(evaluator.first_verdict_rows, config.segment_min_rows) if evaluator else None
            judgeable = min_rows is not None and first is not None and len(rows) >= first
            drift = evaluator.evaluate(rows) if evaluator and judgeable else None
            quality = None
            if len(with_labels) >= config.segment_min_labelled_rows:
                quality = model_quality(self.description, with_labels)
            results[str(segment)] = SegmentResult(len(rows), len(with_labels), drift, quality, min_rows)
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


def _at_least(derived: int | None, configured: int | None) -> int | None:
    """Return the derived minimum, raised to the configured one (never lowered: below it no verdict is honest)."""
    if derived is None:
        return None
    return max(derived, configured or 0)
