"""Quality estimated before labels, beside the realised quality, per period and per segment (the run summary's part).

The model folder's prepared estimator (monitoring_core/estimation.py, fitted by `python -m
monitoring_core.prepare`) judges every analysed row of the period, labelled or not, with a band that
should hold the metric the rows will realise. Over the rows whose labels have arrived, the realised
metric is compared with the estimate of those same rows: realised minus estimated is the gap, and a
realised value outside that band hints at concept drift (docs/runbook.md, PerformanceEstimateGap).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from monitoring_core.description import ModelDescription
from monitoring_core.estimation import Estimate, EstimatorError, PerformanceEstimator, load_estimator
from prefect_flows import quality

# Written beside every estimate: what the estimate cannot see.
LIMIT = (
    "Estimated from the inputs and the model's outputs alone, assuming the reference's relation between "
    "inputs and target still holds: it follows covariate shift but cannot see pure concept drift (labels "
    "that change for the same inputs). A realised value far from the estimate of the same rows (a large "
    "gap, outside the band) is the hint of concept drift, or of wrong labels."
)
NOT_PREPARED = "no estimator: run python -m monitoring_core.prepare on the model folder"


def load(folder: Any) -> tuple[PerformanceEstimator | None, str | None]:
    """Return the folder's prepared estimator, or None and why there is none (missing, stale, no probabilities)."""
    try:
        estimator = load_estimator(folder)
    except EstimatorError as exc:
        return None, f"{NOT_PREPARED} ({exc})"
    if estimator.reason is not None:
        return None, estimator.reason
    return estimator, None


def why_not(reason: str) -> str:
    """Return why there is no estimate, led once by "no estimate" (the estimator's reasons already say it)."""
    return reason if reason.startswith(("no estimate", "no estimator")) else f"no estimate: {reason}"


def unavailable(reason: str) -> dict[str, Any]:
    """Return the summary's estimation part when there is no estimate, saying why."""
    return {"available": False, "reason": reason, "limit": LIMIT}


def _band(estimate: Estimate, metric: str) -> dict[str, float] | None:
    band = estimate.metrics.get(metric)
    if band is None or not math.isfinite(band.value):
        return None
    return {"estimated": band.value, "low": band.low, "high": band.high}


def _compare(
    description: ModelDescription,
    estimator: PerformanceEstimator,
    rows: pd.DataFrame,
    labelled: pd.DataFrame,
    min_labelled_rows: int,
) -> dict[str, Any]:
    """Return one group's estimate over every row and, with enough labels, realised, gap and band per metric."""
    estimate = estimator.estimate(rows)
    metrics = {m: band for m in estimator.metrics if ":" not in m and (band := _band(estimate, m)) is not None}
    part: dict[str, Any] = {"rows": estimate.rows, "labelled_rows": len(labelled), "metrics": metrics}
    if estimate.reason:
        part["reason"] = estimate.reason
    if len(labelled) < max(min_labelled_rows, 1):
        return part
    realised = quality.overall(description, labelled)
    same_rows = estimator.estimate(labelled)  # the gap compares like with like: the labelled rows' own estimate
    for metric, gap in same_rows.gaps(realised).items():
        if metric not in metrics:
            continue
        band = same_rows.metrics[metric]
        metrics[metric].update(
            realised=realised[metric],
            labelled_estimated=band.value,
            labelled_low=band.low,
            labelled_high=band.high,
            gap=gap.value,
            outside_band=gap.outside_band,
        )
    return part


def summarise(
    description: ModelDescription,
    estimator: PerformanceEstimator | None,
    reason: str | None,
    current: pd.DataFrame,
    min_labelled_rows: int,
    segment_min_labelled_rows: int,
) -> dict[str, Any]:
    """Return the summary's estimation part: the period's and each segment's estimate, realised value and gap."""
    if estimator is None:
        return unavailable(reason or NOT_PREPARED)
    labelled = current[current[description.target_column].notna()]
    summary: dict[str, Any] = {
        "available": True,
        "level": estimator.level,
        "period": _compare(description, estimator, current, labelled, min_labelled_rows),
        "segments": [],
        "limit": LIMIT,
    }
    segment = description.segment
    if segment is not None and segment.name in current.columns:
        by_segment = current.groupby(current[segment.name].astype(str), sort=False)
        for name, rows in by_segment:
            part = _compare(
                description, estimator, rows, rows[rows[description.target_column].notna()], segment_min_labelled_rows
            )
            summary["segments"].append({"segment": str(name), **part})
        summary["segments"].sort(key=lambda s: -s["rows"])
    return summary


def band_text(name: str, values: dict[str, Any], unit: str = "", prefix: str = "") -> str:
    """Return e.g. "estimated RMSE 6.10 minutes [5.20, 7.00]" from one metric's summary entry."""
    keys = ("labelled_estimated", "labelled_low", "labelled_high") if prefix else ("estimated", "low", "high")
    value, low, high = (values[k] for k in keys)
    digits = 2 if name in quality.IN_TARGET_UNIT else 3
    text = quality.metric_text(name, value, unit)
    return f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def gap_text(name: str, values: dict[str, Any], unit: str = "") -> str:
    """Return e.g. "realised RMSE 9.10 minutes, gap +3.00 (outside the band)", or "" without labels enough."""
    if "realised" not in values:
        return ""
    digits = 2 if name in quality.IN_TARGET_UNIT else 3
    where = "OUTSIDE the band: concept-drift hint" if values["outside_band"] else "inside the band"
    return f"realised {quality.metric_text(name, values['realised'], unit)}, gap {values['gap']:+.{digits}f} ({where})"


def headline(summary: dict[str, Any]) -> str:
    """Return the headline metrics' estimate (and realised value and gap, when labelled) for the index."""
    estimation = summary.get("estimation")
    if not estimation:
        return ""
    if not estimation["available"]:
        return why_not(estimation["reason"])
    unit = (summary.get("columns") or {}).get("target_unit", "")
    names = quality.HEADLINE.get(summary.get("task", "regression"), quality.HEADLINE["regression"])
    metrics = estimation["period"]["metrics"]
    parts = []
    for name in names:
        if name in metrics:
            gap = gap_text(name, metrics[name], unit)
            parts.append(f"estimated {band_text(name, metrics[name], unit)}" + (f"; {gap}" if gap else ""))
    return "; ".join(parts)
