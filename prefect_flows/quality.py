"""Model quality on a period's labelled rows, by task: the numbers of the summary, overall and per segment.

Regression reads RMSE, MAE and mean error (Evidently's sign: prediction - target); classification
computes the metric contract's names (accuracy, f1_macro, precision_macro, recall_macro, and with
class probabilities log_loss and brier) with scikit-learn over the described classes, so a class
absent from the period still counts in the macro averages' label set and the numbers equal the
metrics service's definitions rather than Evidently's binary positive-class precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitoring_core.description import ModelDescription

# Names people read in headers, the index and messages.
LABELS = {
    "rmse": "RMSE",
    "mae": "MAE",
    "mean_error": "mean error",
    "accuracy": "accuracy",
    "f1_macro": "F1 macro",
    "precision_macro": "precision macro",
    "recall_macro": "recall macro",
    "log_loss": "log loss",
    "brier": "Brier score",
}
# The headline metrics of each task (the verdict line and the message show them).
HEADLINE = {"regression": ("rmse", "mae"), "classification": ("accuracy", "f1_macro")}
# Metrics in the target's unit (the others are ratios or scores without one).
IN_TARGET_UNIT = frozenset({"rmse", "mae", "mean_error", "abs_max_error"})


def metric_text(name: str, value: float, unit: str = "") -> str:
    """Return one metric as people read it, e.g. "RMSE 5.21 minutes" or "accuracy 0.934"."""
    label = LABELS.get(name, name)
    if name in IN_TARGET_UNIT:
        return f"{label} {value:.2f}" + (f" {unit}" if unit else "")
    return f"{label} {value:.3f}"


def headline(summary: dict[str, Any]) -> str:
    """Return the headline quality metrics of a summary whose quality is available."""
    quality = summary["quality"]
    names = HEADLINE.get(summary.get("task", "regression"), HEADLINE["regression"])
    unit = (summary.get("columns") or {}).get("target_unit", "")
    return ", ".join(metric_text(n, quality[n], unit) for n in names if quality.get(n) is not None)


def regression_errors(description: ModelDescription, frame: pd.DataFrame) -> pd.Series:
    """Return each labelled row's error, prediction - target (Evidently's sign: positive = over-predicted)."""
    return frame[description.prediction_column] - frame[description.target_column]


def _regression(errors: pd.Series) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
        "mean_error": float(np.mean(errors)),
    }


def _probabilities(description: ModelDescription, frame: pd.DataFrame) -> np.ndarray | None:
    """Return the rows' class probabilities in the order of the described classes (None without them)."""
    columns = description.probability_columns
    if not columns or set(columns) != set(description.class_keys):
        return None  # log loss and Brier need every class's probability
    probabilities = frame[[columns[c] for c in description.class_keys]].to_numpy(dtype=float)
    return None if np.isnan(probabilities).any() else probabilities


def classification_metrics(description: ModelDescription, frame: pd.DataFrame) -> dict[str, float]:
    """Return accuracy and the macro averages (and log loss and Brier score with probabilities) of labelled rows."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    classes = list(description.class_keys)
    actual = frame[description.target_column].astype(str)
    predicted = frame[description.prediction_column].astype(str)
    precision, recall, f1, _ = precision_recall_fscore_support(
        actual, predicted, labels=classes, average="macro", zero_division=0
    )
    values = {
        "accuracy": float(accuracy_score(actual, predicted)),
        "f1_macro": float(f1),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
    }
    probabilities = _probabilities(description, frame)
    if probabilities is not None:
        onehot = (actual.to_numpy()[:, None] == np.array(classes)[None, :]).astype(float)
        # scikit-learn's log_loss: each row's probability of its actual class, clipped away from 0.
        actual_probability = np.clip(np.sum(probabilities * onehot, axis=1), np.finfo(float).eps, 1.0)
        values["log_loss"] = float(np.mean(-np.log(actual_probability)))
        # Multi-class Brier score halved, so that with two classes it is the familiar binary one.
        values["brier"] = float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)) / 2)
    return values


def overall(description: ModelDescription, labelled: pd.DataFrame) -> dict[str, float]:
    """Return the task's quality metrics of the labelled rows."""
    if description.is_classification:
        return classification_metrics(description, labelled)
    return _regression(regression_errors(description, labelled))


def per_class(description: ModelDescription, labelled: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Return precision, recall, F1 and support per described class (classification)."""
    from sklearn.metrics import precision_recall_fscore_support

    classes = list(description.class_keys)
    precision, recall, f1, support = precision_recall_fscore_support(
        labelled[description.target_column].astype(str),
        labelled[description.prediction_column].astype(str),
        labels=classes,
        zero_division=0,
    )
    return {
        c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }


def segment_quality(description: ModelDescription, labelled: pd.DataFrame, min_rows: int) -> list[dict[str, Any]]:
    """Return the task's quality per segment (segments with at least `min_rows` labels), largest first."""
    segment = description.segment
    if segment is None or segment.name not in labelled.columns:
        return []
    table = []
    for name, rows in labelled.groupby(labelled[segment.name]):
        if len(rows) < min_rows:
            continue
        if description.is_classification:
            values = {
                k: v for k, v in classification_metrics(description, rows).items() if k in HEADLINE["classification"]
            }
        else:
            values = _regression(regression_errors(description, rows))
        table.append({"segment": str(name), "labelled_rows": int(len(rows)), **values})
    return sorted(table, key=lambda row: -row["labelled_rows"])
