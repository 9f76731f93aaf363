"""Data quality of a window against the reference, and model quality over its labelled rows, by task.

Model quality uses scikit-learn's metrics; the names are the description's (`metric_names`):
regression rmse, mae, mean_error; classification accuracy, the macro averages, and with class
probabilities log loss and Brier score. The same functions serve the whole window and each segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evidently_service.window import LABEL_TIMESTAMP
from monitoring_core.description import TIMESTAMP, Kind, ModelDescription

DELAY_QUANTILES = (0.5, 0.9)
CLASS_METRICS = ("precision", "recall", "f1")


@dataclass(frozen=True)
class FeatureQuality:
    """Shares of one field over the window; None where the share does not apply to the field's kind."""

    missing_share: float
    out_of_range_share: float | None
    new_category_share: float | None


@dataclass(frozen=True)
class ReferenceProfile:
    """What data quality compares a window with: the watched fields, numerical ranges, known categories."""

    features: tuple[str, ...]
    ranges: dict[str, tuple[float, float]]
    categories: dict[str, frozenset[str]]

    @classmethod
    def of(cls, description: ModelDescription, reference: pd.DataFrame) -> ReferenceProfile:
        """Profile every watched field of the description on the typed reference (monitoring_core/reference_data.py)."""
        ranges, categories = {}, {}
        features = tuple(f.name for f in description.features if f.monitor)
        for name in features:
            kind = description.feature(name).kind
            if kind is Kind.NUMERICAL:
                values = reference[name].to_numpy(dtype=float)
                values = values[np.isfinite(values)]
                if len(values):
                    ranges[name] = (float(values.min()), float(values.max()))
            elif kind is Kind.CATEGORICAL:
                categories[name] = frozenset(v for v in reference[name] if v is not None)
        return cls(features=features, ranges=ranges, categories=categories)


def data_quality(window: pd.DataFrame, profile: ReferenceProfile) -> dict[str, FeatureQuality]:
    """Return missing, out-of-reference-range and new-category shares of every watched field."""
    n = len(window)
    result = {}
    for name in profile.features:
        out_of_range = new_category = None
        if name in profile.categories:
            values = window[name]
            present = values.notna().to_numpy()
            known = values.isin(profile.categories[name]).to_numpy()
            new_category = float(np.count_nonzero(present & ~known) / n)
        else:
            values = window[name].to_numpy(dtype=float)
            present = ~np.isnan(values)
            if name in profile.ranges:
                low, high = profile.ranges[name]
                out_of_range = float(np.count_nonzero(present & ((values < low) | (values > high))) / n)
        result[name] = FeatureQuality(float(1 - present.mean()), out_of_range, new_category)
    return result


@dataclass(frozen=True)
class ModelQuality:
    """Model quality over labelled rows: the task's metrics, and for a classifier per class and confusion counts."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)  # class -> precision / recall / f1
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)  # (actual, predicted) -> rows


def model_quality(description: ModelDescription, rows: pd.DataFrame) -> ModelQuality:
    """Return the task's model quality over `rows` (labelled window rows)."""
    prediction, target = rows[description.prediction_column], rows[description.target_column]
    if not description.is_classification:
        return ModelQuality(regression_quality(prediction.to_numpy(dtype=float), target.to_numpy(dtype=float)))
    probabilities = None
    columns = description.probability_columns
    if columns and set(columns) == set(description.class_keys):
        probabilities = rows[[columns[c] for c in description.class_keys]].to_numpy(dtype=float)
    return classification_quality(
        description.class_keys, target.to_numpy(dtype=object), prediction.to_numpy(dtype=object), probabilities
    )


def regression_quality(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Return RMSE, MAE and mean error (prediction - target, as Evidently), in the target's unit."""
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error

    return {
        "rmse": float(root_mean_squared_error(target, prediction)),
        "mae": float(mean_absolute_error(target, prediction)),
        "mean_error": float(np.mean(prediction - target)),
    }


def classification_quality(
    classes: tuple[str, ...], actual: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray | None = None
) -> ModelQuality:
    """Return accuracy, macro precision/recall/F1, per-class scores, confusion counts; log loss and Brier with
    `probabilities` (one column per class, in `classes` order; rows with a missing probability are left out).

    Macro averages and per-class scores cover the classes present among the actual or predicted labels
    (a class absent from both has no precision or recall to speak of).
    """
    from sklearn.metrics import accuracy_score, brier_score_loss, confusion_matrix, log_loss
    from sklearn.metrics import precision_recall_fscore_support as prfs

    present = [c for c in classes if c in set(actual) | set(predicted)]
    precision, recall, f1, _ = prfs(actual, predicted, labels=present, zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(actual, predicted)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
    }
    if probabilities is not None:
        complete = np.isfinite(probabilities).all(axis=1)
        if complete.any():
            p = np.clip(probabilities[complete], 0.0, 1.0)
            sums = p.sum(axis=1, keepdims=True)
            p = np.divide(p, sums, out=np.full_like(p, 1 / len(classes)), where=sums > 0)
            # scikit-learn reads probability columns in the labels' sorted order, whatever order `labels` has.
            ordered = sorted(classes)
            p = p[:, [classes.index(c) for c in ordered]]
            y = actual[complete]
            metrics["log_loss"] = float(log_loss(y, p, labels=ordered))
            metrics["brier"] = float(brier_score_loss(y, p, labels=ordered))
    per_class = {
        cls: {"precision": float(pr), "recall": float(rc), "f1": float(f)}
        for cls, pr, rc, f in zip(present, precision, recall, f1, strict=True)
    }
    matrix = confusion_matrix(actual, predicted, labels=list(classes))
    confusion = {(a, p): int(matrix[i, j]) for i, a in enumerate(classes) for j, p in enumerate(classes)}
    return ModelQuality(metrics, per_class, confusion)


def labelled(window: pd.DataFrame, target: str) -> pd.DataFrame:
    """Return the window rows that have ground truth."""
    return window[window[target].notna()]


def label_delays(rows: pd.DataFrame) -> dict[float, float]:
    """Return quantiles of the delay (seconds) between prediction and label."""
    delays = (rows[LABEL_TIMESTAMP] - rows[TIMESTAMP]).to_numpy(dtype=float)
    delays = delays[np.isfinite(delays)]
    if not len(delays):
        return {}
    return {q: float(np.quantile(delays, q)) for q in DELAY_QUANTILES}
