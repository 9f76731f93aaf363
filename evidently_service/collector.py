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
from evidently_service.quality import CLASS_METRICS, ModelQuality

# Up to this many classes every (actual, predicted) cell of the confusion counts is exported.
DENSE_CONFUSION_CLASSES = 20


class MonitorCollector(Collector):
    """Yield metric families from the monitors' latest results and counters."""

    def __init__(self, monitors: Mapping[str, ModelMonitor]) -> None:
        self.monitors = monitors
        periods = sorted({m.config.evaluation_period_seconds for m in monitors.values()})
        every = f"{periods[0]:g}" if len(periods) == 1 else f"{periods[0]:g}-{periods[-1]:g}"
        self._fresh = f"; recomputed every {every} s"

    def collect(self) -> Iterable[Metric]:
        families = _Families(self._fresh)
        for name, monitor in list(self.monitors.items()):  # a snapshot: a model may be added meanwhile
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
            "evidently_feature_drift_threshold",
            "Threshold the drift score is compared with, calibrated from the reference for the window's size "
            "(absent while the feature has too few rows for a verdict)",
            ("feature", "stattest"),
        )
        self.calibrated_rows = gauge(
            "evidently_drift_calibrated_rows",
            "Size bucket (rows) the feature's drift threshold was calibrated for",
            ("feature",),
        )
        self.feature_min_rows = gauge(
            "evidently_feature_drift_min_rows",
            "Usable values the feature needs for a drift verdict (derived from the reference)",
            ("feature",),
        )
        self.not_enough = gauge(
            "evidently_feature_drift_not_enough_data",
            "1 when the window has values of the feature but fewer than its minimum: no verdict",
            ("feature",),
        )
        self.false_alarm = gauge(
            "evidently_drift_false_alarm_rate",
            "Per-evaluation false-alarm rate the drift thresholds are calibrated for, per feature or for the dataset",
            ("scope",),
        )
        self.feature_rate = gauge(
            "evidently_feature_drift_false_alarm_rate",
            "Chance that a clean window of this size flags the feature: the calibrated rate until the effect-size "
            "floor binds, then less (an upper bound there, at least 1/(draws+1))",
            ("feature",),
        )
        self.dataset_rate = gauge(
            "evidently_dataset_drift_false_alarm_rate",
            "Chance that a clean window of this size makes dataset drift: the family-wise rate, or less once the "
            "features' effect-size floors bind",
        )
        self.detected = gauge("evidently_feature_drift_detected", "1 when the feature drifted, else 0", ("feature",))
        self.window_rows = gauge("evidently_window_rows", "Rows in the current window", periodic=False)
        self.min_rows = gauge(
            "evidently_window_min_rows",
            "Rows needed before drift and data-quality verdicts are exported (derived from the reference)",
        )
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
        self.unseen_share = gauge(
            "evidently_feature_drift_unseen_share",
            "Share of the categorical feature's usable window values that the reference never saw (its drift "
            "verdict's second test; absent for numerical features and while there are too few rows for a verdict)",
            ("feature",),
        )
        self.unseen_threshold = gauge(
            "evidently_feature_drift_unseen_threshold",
            "Threshold the unseen share is compared with, calibrated from the reference for the window's size "
            "(never below its Good-Turing unseen mass + 0.05); drift when the score or the unseen share reaches "
            "its threshold",
            ("feature",),
        )
        self.histogram_distance = gauge(
            "evidently_feature_drift_histogram_distance",
            "Jensen-Shannon distance between the numerical feature's shares in the reference's quantile bins and the "
            "reference's (its drift verdict's second test; absent for categorical features and while there are too "
            "few rows for a verdict)",
            ("feature",),
        )
        self.histogram_threshold = gauge(
            "evidently_feature_drift_histogram_threshold",
            "Threshold the histogram distance is compared with, calibrated from the reference for the window's size; "
            "drift when the score reaches its threshold, or the histogram distance reaches its own while the score "
            "reaches its effect-size floor",
            ("feature",),
        )
        self.feature_p = gauge(
            "evidently_feature_drift_p_value",
            "Calibrated tail p-value of the feature's drift score (share of clean reference draws scoring as high)",
            ("feature",),
        )
        self.dataset_p = gauge(
            "evidently_dataset_drift_p_value",
            "Holm-adjusted p-value of the dataset verdict (the smallest over the features; drift at or below the rate)",
        )
        self.flagged = gauge(
            "evidently_dataset_drift_flagged",
            "1 when the feature is one the dataset verdict flags (Holm over the features at the dataset rate)",
            ("feature",),
        )
        self.mv_score = gauge(
            "evidently_multivariate_drift_score",
            "Joint drift score: the largest change of a correlation between two features, window vs reference",
            ("method",),
        )
        self.mv_threshold = gauge(
            "evidently_multivariate_drift_threshold", "Threshold the joint drift score is compared with", ("method",)
        )
        self.mv_detected = gauge(
            "evidently_multivariate_drift_detected", "1 when the features drifted jointly, else 0", ("method",)
        )
        self.seg_flagged = gauge(
            "evidently_segment_drift_flagged",
            "1 when the feature drifted within the segment (one Holm correction over every segment x feature)",
            ("segment", "feature"),
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
            "Model quality over labelled window rows by the task's metrics (regression: in the target's unit) "
            "(absent below the minimum labelled rows)",
            ("metric",),
        )
        self.class_quality = gauge(
            "evidently_class_quality",
            "Per-class precision, recall and F1 of a classifier over labelled window rows",
            ("class", "metric"),
        )
        self.confusion = gauge(
            "evidently_confusion_rows",
            "Labelled window rows of a classifier per actual and predicted class",
            ("actual", "predicted"),
        )
        self.quality_threshold = gauge(
            "evidently_model_quality_threshold",
            "The model description's alert bound on a model-quality metric (bound: max or min)",
            ("metric", "bound"),
            periodic=False,
        )
        self.task_info = gauge("evidently_model_task_info", "The model's task (value 1)", ("task",), periodic=False)
        # Quality estimated before labels arrive (monitoring_core/estimation.py): a value and its 90% band.
        estimated = "estimated from every window row, labelled or not (docs/performance_estimation.md)"
        self.est_quality = gauge("evidently_estimated_model_quality", f"Model quality {estimated}", ("metric",))
        self.est_low = gauge(
            "evidently_estimated_model_quality_low", "Lower edge of the estimate's 90% band", ("metric",)
        )
        self.est_high = gauge(
            "evidently_estimated_model_quality_high", "Upper edge of the estimate's 90% band", ("metric",)
        )
        self.est_class = gauge(
            "evidently_estimated_class_quality", f"Per-class quality {estimated}", ("class", "metric")
        )
        self.est_rows = gauge("evidently_estimated_rows", "Window rows the quality estimate judged")
        self.est_available = gauge(
            "evidently_estimation_available",
            "1 when the model has a prepared performance estimator, 0 without (the reason is on /health)",
            periodic=False,
        )
        self.est_gap = gauge(
            "evidently_estimation_gap",
            "Realised minus estimated quality over the same labelled window rows (a concept-drift hint)",
            ("metric",),
        )
        self.est_outside = gauge(
            "evidently_estimation_outside_band",
            "1 when the realised quality of the labelled rows lies outside the band estimated from their inputs",
            ("metric",),
        )
        self.too_small = gauge(
            "evidently_reference_too_small",
            "1 when the reference is too small to calibrate the feature's drift at any window size (no verdict "
            "will come), else 0; absent until the calibration has derived it",
            ("feature",),
            periodic=False,
        )
        self.labelled_rows = gauge("evidently_labelled_rows", "Window rows that have ground truth")
        self.coverage = gauge("evidently_label_coverage", "Share of window rows that have ground truth")
        self.delay = gauge(
            "evidently_label_delay_seconds",
            "Delay between prediction and label over labelled window rows",
            ("quantile",),
        )
        self.seg_rows = gauge(
            "evidently_segment_window_rows", "Window rows per segment of the model's segment rule", ("segment",)
        )
        self.seg_quality = gauge(
            "evidently_segment_model_quality",
            "Model quality per segment by the task's metrics (segments with enough labels)",
            ("segment", "metric"),
        )
        self.seg_min_rows = gauge(
            "evidently_segment_drift_min_rows",
            "Window rows a segment needs for its drift verdict (derived from its reference rows)",
            ("segment",),
        )
        self.seg_drift = gauge(
            "evidently_segment_drifted_features_share",
            "Share of drifted features per segment against the same segment of the reference "
            "(segments with enough rows)",
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
        self.window_rows.add_metric([model], len(monitor.window))
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
        description = monitor.description
        self.task_info.add_metric([model, description.task.value], 1)
        for metric, (bound, value) in sorted(description.alert_bounds().items()):
            self.quality_threshold.add_metric([model, metric, bound], value)
        self.est_available.add_metric([model], int(monitor.estimator is not None))
        for feature, too_small in sorted((monitor.reference_too_small or {}).items()):
            self.too_small.add_metric([model, feature], int(too_small))
        self.unknown_rows.add_metric([model], monitor.unknown_fields.rows)
        for name, rows in monitor.unknown_fields.top():
            self.unknown_field_rows.add_metric([model, name], rows)
        if result is None:
            return
        if result.min_rows is not None:  # derived in the evaluation (a scrape never waits for a calibration)
            self.min_rows.add_metric([model], result.min_rows)
        self.last_eval.add_metric([model], result.computed_at)
        self.eval_duration.add_metric([model], result.duration_seconds)
        self.labelled_rows.add_metric([model], result.labelled_rows)
        self.coverage.add_metric([model], result.label_coverage)
        for q, seconds in result.label_delay.items():
            self.delay.add_metric([model, f"{q:g}"], seconds)
        drift = result.drift
        if drift is not None:
            if drift.false_alarm_rate is not None and drift.dataset_false_alarm_rate is not None:
                self.false_alarm.add_metric([model, "feature"], drift.false_alarm_rate)
                self.false_alarm.add_metric([model, "dataset"], drift.dataset_false_alarm_rate)
            if drift.enough_data:
                self.dataset_drift.add_metric([model], int(drift.dataset_drift))
                self.drifted_share.add_metric([model], drift.drifted_share)
                if drift.dataset_p_value is not None:
                    self.dataset_p.add_metric([model], drift.dataset_p_value)
                if drift.stated_dataset_rate is not None:
                    self.dataset_rate.add_metric([model], drift.stated_dataset_rate)
                for feature in drift.features:
                    self.flagged.add_metric([model, feature], int(feature in drift.flagged))
            joint = drift.multivariate
            if joint is not None and joint.enough_data and math.isfinite(joint.score):
                self.mv_score.add_metric([model, joint.method], joint.score)
                self.mv_threshold.add_metric([model, joint.method], joint.threshold)
                self.mv_detected.add_metric([model, joint.method], int(joint.detected))
            for column in drift.columns.values():
                if column.min_rows is not None:
                    self.feature_min_rows.add_metric([model, column.column], column.min_rows)
                if math.isnan(column.score):
                    continue  # no usable value in the window: no verdict
                self.not_enough.add_metric([model, column.column], int(not column.enough_data))
                if not column.enough_data:
                    continue
                self.score.add_metric([model, column.column, column.stattest], column.score)
                self.threshold.add_metric([model, column.column, column.stattest], column.threshold)
                self.calibrated_rows.add_metric([model, column.column], column.calibrated_rows)
                self.detected.add_metric([model, column.column], int(column.detected))
                if column.p_value is not None:
                    self.feature_p.add_metric([model, column.column], column.p_value)
                if column.false_alarm_rate is not None:
                    self.feature_rate.add_metric([model, column.column], column.false_alarm_rate)
                if column.unseen_share is not None and column.unseen_threshold is not None:
                    self.unseen_share.add_metric([model, column.column], column.unseen_share)
                    self.unseen_threshold.add_metric([model, column.column], column.unseen_threshold)
                if column.bins_distance is not None and column.bins_threshold is not None:
                    self.histogram_distance.add_metric([model, column.column], column.bins_distance)
                    self.histogram_threshold.add_metric([model, column.column], column.bins_threshold)
        for feature, quality in (result.data_quality or {}).items():
            self.missing.add_metric([model, feature], quality.missing_share)
            if quality.out_of_range_share is not None:
                self.out_of_range.add_metric([model, feature], quality.out_of_range_share)
            if quality.new_category_share is not None:
                self.new_category.add_metric([model, feature], quality.new_category_share)
        if result.model_quality is not None:
            self.add_model_quality(model, result.model_quality)
        if result.estimate is not None and result.estimate.metrics:
            self.est_rows.add_metric([model], result.estimate.rows)
            for metric, band in result.estimate.metrics.items():
                self.est_quality.add_metric([model, metric], band.value)
                self.est_low.add_metric([model, metric], band.low)
                self.est_high.add_metric([model, metric], band.high)
            for cls, per in result.estimate.classes.items():
                for metric, band in per.items():
                    self.est_class.add_metric([model, cls, metric], band.value)
        for metric, gap in result.gaps.items():
            self.est_gap.add_metric([model, metric], gap.value)
            self.est_outside.add_metric([model, metric], int(gap.outside_band))
        for (segment, feature), flagged in sorted(result.segment_flags.items()):
            self.seg_flagged.add_metric([model, segment, feature], int(flagged))
        for segment, seg in result.segments.items():
            self.seg_rows.add_metric([model, segment], seg.rows)
            if seg.min_rows is not None:
                self.seg_min_rows.add_metric([model, segment], seg.min_rows)
            if seg.drift is not None and seg.drift.enough_data:  # every feature at its minimum
                self.seg_drift.add_metric([model, segment], seg.drift.drifted_share)
            if seg.quality is not None:
                for metric, value in seg.quality.metrics.items():
                    self.seg_quality.add_metric([model, segment, metric], value)

    def add_model_quality(self, model: str, quality: ModelQuality) -> None:
        """Add a model's realised quality: the task's metrics, per class scores and confusion counts."""
        for metric, value in quality.metrics.items():
            self.quality.add_metric([model, metric], value)
        for cls, scores in quality.per_class.items():
            for metric in CLASS_METRICS:
                self.class_quality.add_metric([model, cls, metric], scores[metric])
        # Every cell up to DENSE_CONFUSION_CLASSES classes; beyond, the diagonal and the cells with rows (50
        # classes would be 2,500 series per model, nearly all 0): series stay within classes + window rows.
        dense = len({actual for actual, _ in quality.confusion}) <= DENSE_CONFUSION_CLASSES
        for (actual, predicted), rows in quality.confusion.items():
            if dense or rows or actual == predicted:
                self.confusion.add_metric([model, actual, predicted], rows)

    def all(self) -> list[Metric]:
        families = [value for value in vars(self).values() if isinstance(value, Metric)]
        for family in families:
            # Inputs are bounded, but a metric must never be +-Inf or NaN whatever slips through (an overflow,
            # an empty share): PromQL would carry it into every rule and panel. No value is better than a wrong one.
            family.samples = [s for s in family.samples if math.isfinite(s.value)]
        return families
