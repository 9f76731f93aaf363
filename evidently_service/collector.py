"""A prometheus-client Collector that exports every model's latest evaluation under the catalogue's names.

Names, labels and meanings: docs/metrics.md. Values come from each monitor's latest
immutable `EvaluationResult`, read once per scrape, so a scrape never mixes two
evaluations and a label set that no longer applies disappears with the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from evidently_service.evaluator import EvaluationResult, ModelMonitor
from evidently_service.field_tally import TOP
from evidently_service.quality import QUALITY_METRICS


class MonitorCollector(Collector):
    """Yield metric families from the monitors' latest results and counters."""

    def __init__(self, monitors: Mapping[str, ModelMonitor]) -> None:
        self.monitors = monitors
        periods = sorted({m.config.evaluation_period_seconds for m in monitors.values()})
        every = f"{periods[0]:g}" if len(periods) == 1 else f"{periods[0]:g}-{periods[-1]:g}"
        self._fresh = f"; recomputed every {every} s"

    def collect(self) -> Iterable[Metric]:
        families = _Families(self._fresh)
        for name, monitor in self.monitors.items():
            families.add_monitor(name, monitor, monitor.latest)
        return families.all()


class _Families:
    """The metric families of one scrape, filled model by model."""

    def __init__(self, fresh: str) -> None:
        def gauge(name: str, doc: str, labels: tuple[str, ...] = (), periodic: bool = True) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc + (fresh if periodic else ""), labels=["model", *labels])

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=["model", *labels])

        self.dataset_drift = gauge(
            "evidently_dataset_drift",
            "1 when the share of drifted features reaches the "
            "dataset-drift share, else 0 (absent below the minimum rows)",
        )
        self.drifted_share = gauge(
            "evidently_drifted_features_share", "Share of monitored features (prediction excluded) that drifted"
        )
        self.score = gauge(
            "evidently_feature_drift_score", "Score of the pinned Evidently stat test", ("feature", "stattest")
        )
        self.threshold = gauge(
            "evidently_feature_drift_threshold", "Threshold the drift score is compared with", ("feature", "stattest")
        )
        self.detected = gauge("evidently_feature_drift_detected", "1 when the feature drifted, else 0", ("feature",))
        self.window_rows = gauge("evidently_window_rows", "Rows in the current window", periodic=False)
        self.min_rows = gauge("evidently_window_min_rows", "Rows needed before any verdict is exported", periodic=False)
        self.last_eval = gauge(
            "evidently_last_evaluation_timestamp_seconds", "Unix time the exported evaluation was computed"
        )
        self.eval_duration = gauge("evidently_evaluation_duration_seconds", "How long the exported evaluation took")
        self.missing = gauge(
            "evidently_feature_missing_share", "Share of window rows with the field missing", ("feature",)
        )
        self.out_of_range = gauge(
            "evidently_feature_out_of_range_share",
            "Share of window rows outside the reference's min..max",
            ("feature",),
        )
        self.new_category = gauge(
            "evidently_feature_new_category_share",
            "Share of window rows with a category never seen in the reference",
            ("feature",),
        )
        self.received = counter("evidently_rows_received", "Rows accepted by /iterate")
        self.rejected = counter("evidently_rows_rejected", "Rows rejected by /iterate, by reason", ("reason",))
        self.labels = counter(
            "evidently_labels_received", "Ground-truth labels received by /feedback, by result", ("result",)
        )
        self.eval_errors = counter("evidently_evaluation_errors", "Evaluations that failed (see the logs)")
        self.pending = gauge("evidently_pending_labels", "Labels waiting for their row to arrive", periodic=False)
        self.quality = gauge(
            "evidently_model_quality",
            "Model quality over labelled window rows, minutes (absent below the minimum labelled rows)",
            ("metric",),
        )
        self.labelled_rows = gauge("evidently_labelled_rows", "Window rows that have ground truth")
        self.coverage = gauge("evidently_label_coverage", "Share of window rows that have ground truth")
        self.delay = gauge(
            "evidently_label_delay_seconds",
            "Delay between prediction and label over labelled window rows",
            ("quantile",),
        )
        self.seg_rows = gauge("evidently_segment_window_rows", "Window rows per pickup borough", ("segment",))
        self.seg_quality = gauge(
            "evidently_segment_model_quality",
            "Model quality per pickup borough, minutes (segments with enough labels)",
            ("segment", "metric"),
        )
        self.seg_drift = gauge(
            "evidently_segment_drifted_features_share",
            "Share of drifted features per pickup "
            "borough against the same borough in the reference (segments with enough rows)",
            ("segment",),
        )
        self.unknown_field_rows = gauge(
            "evidently_unknown_field_rows",
            f"Rows received since start carrying this field outside the schema (the {TOP} most frequent names; "
            "approximate: a count is over by at most the count of the name it replaced)",
            ("field",),
            periodic=False,
        )
        self.unknown_rows = counter(
            "evidently_rows_with_unknown_fields", "Rows received carrying at least one field outside the schema"
        )
        self.ref_rows = gauge("evidently_reference_rows", "Rows in the reference dataset", periodic=False)
        self.ref_info = gauge(
            "evidently_reference_info",
            "The reference's content hash and the model version it was built with (value 1)",
            ("reference_hash", "model_version"),
            periodic=False,
        )

    def add_monitor(self, model: str, monitor: ModelMonitor, result: EvaluationResult | None) -> None:
        config = monitor.config
        self.window_rows.add_metric([model], len(monitor.window))
        self.min_rows.add_metric([model], config.min_rows)
        self.pending.add_metric([model], monitor.window.pending_labels)
        self.ref_rows.add_metric([model], monitor.reference.rows)
        self.ref_info.add_metric([model, monitor.reference.content_hash, monitor.reference.model_version], 1)
        counters = monitor.counter_values()
        self.received.add_metric([model], counters.get(("received", ""), 0))
        for (metric, label), value in sorted(counters.items()):
            if metric == "rejected":
                self.rejected.add_metric([model, label], value)
            elif metric == "labels":
                self.labels.add_metric([model, label], value)
        self.eval_errors.add_metric([model], counters.get(("evaluation_errors", ""), 0))
        self.unknown_rows.add_metric([model], monitor.unknown_fields.rows)
        for name, rows in monitor.unknown_fields.top():
            self.unknown_field_rows.add_metric([model, name], rows)
        if result is None:
            return
        self.last_eval.add_metric([model], result.computed_at)
        self.eval_duration.add_metric([model], result.duration_seconds)
        self.labelled_rows.add_metric([model], result.labelled_rows)
        self.coverage.add_metric([model], result.label_coverage)
        for q, seconds in result.label_delay.items():
            self.delay.add_metric([model, f"{q:g}"], seconds)
        if result.drift is not None:
            self.dataset_drift.add_metric([model], int(result.drift.dataset_drift))
            self.drifted_share.add_metric([model], result.drift.drifted_share)
            for column in result.drift.columns.values():
                if math.isnan(column.score):
                    continue  # no usable value in the window: no verdict
                self.score.add_metric([model, column.column, column.stattest], column.score)
                self.threshold.add_metric([model, column.column, column.stattest], column.threshold)
                self.detected.add_metric([model, column.column], int(column.detected))
        for feature, quality in (result.data_quality or {}).items():
            self.missing.add_metric([model, feature], quality.missing_share)
            if quality.out_of_range_share is not None:
                self.out_of_range.add_metric([model, feature], quality.out_of_range_share)
            if quality.new_category_share is not None:
                self.new_category.add_metric([model, feature], quality.new_category_share)
        for metric in QUALITY_METRICS:
            if result.model_quality is not None:
                self.quality.add_metric([model, metric], result.model_quality[metric])
        for segment, seg in result.segments.items():
            self.seg_rows.add_metric([model, segment], seg.rows)
            if seg.drift is not None:
                self.seg_drift.add_metric([model, segment], seg.drift.drifted_share)
            for metric in QUALITY_METRICS:
                if seg.quality is not None:
                    self.seg_quality.add_metric([model, segment, metric], seg.quality[metric])

    def all(self) -> list[Metric]:
        families = [value for value in vars(self).values() if isinstance(value, Metric)]
        for family in families:
            # Inputs are bounded, but a metric must never be +-Inf or NaN whatever slips through (an overflow,
            # an empty share): PromQL would carry it into every rule and panel. No value is better than a wrong one.
            family.samples = [s for s in family.samples if math.isfinite(s.value)]
        return families
