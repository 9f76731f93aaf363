"""Exact, mergeable aggregates of a period's rows, computed per partition and merged: the Dask path's numbers.

Each partition (an archived hour, or an hour's MongoDB cursor) gives a `PartitionAggregates`: counts
(rows, labelled rows, model versions, missing and out-of-range values per column, category frequencies),
the sums that make regression quality exact (MAE, RMSE, mean error, R2, max error) or the confusion counts
that make classification quality exact (accuracy, precision/recall/F1 per class and macro; log loss and
Brier sums with probabilities), Apache DataSketches KLL quantile sketches of the numbers, and the
partition's bottom-k sample. Merging is associative and commutative, so partitions may arrive in any order.

The sample: every row gets a 64-bit key, a keyed hash (SipHash, pandas `hash_pandas_object`) of its
`request_id` with a key fixed by model and period; the period's sample is the `k` rows with the smallest
keys. A partition keeps its own `k` smallest, and the `k` smallest of their union are the period's: a
uniform sample without replacement (the keys are independent of the data), the same rows on every
re-run, whatever the partitioning, without one process ever holding the period.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from datasketches import kll_doubles_sketch

from monitoring_core.description import Kind, ModelDescription, category_key
from prefect_flows.columns import MODEL_VERSION, REQUEST_ID, TIMESTAMP, report_features

KLL_K = 200  # DataSketches' default accuracy parameter
# The sketch's normalized rank error for a single quantile at 99% confidence (DataSketches' own figure):
# a quantile q read from the sketch is a value whose true rank lies within q +- this.
KLL_RANK_ERROR = kll_doubles_sketch(KLL_K).normalized_rank_error(False)
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
SAMPLE_KEY = "_sample_key"
SAMPLE_STRATEGY = (
    "uniform sample without replacement: the rows with the smallest keyed hash of request_id (key from model "
    "and period), drawn per partition and merged"
)


def sample_hash_key(seed: int) -> str:
    """Return the 16-character SipHash key for a sampling seed."""
    return hashlib.sha256(str(seed).encode()).hexdigest()[:16]


def sample_keys(ids: pd.Series, seed: int) -> np.ndarray:
    """Return each row's 64-bit sampling key: a keyed hash of its request id."""
    return pd.util.hash_pandas_object(ids.astype(str), index=False, hash_key=sample_hash_key(seed)).to_numpy()


def bottom_k(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Return the `k` rows of `frame` with the smallest sampling keys (all of them when fewer)."""
    if len(frame) <= k:
        return frame
    keys = frame[SAMPLE_KEY].to_numpy()
    chosen = np.argpartition(keys, k - 1)[:k]
    return frame.iloc[np.sort(chosen)]


def _sketched(description: ModelDescription) -> list[str]:
    """Return the numerical columns quantiles are sketched for: numerical features, outputs, a numeric target."""
    columns = [f for f in description.numerical_features if description.feature(f).monitor]
    if not description.is_classification:
        columns += [description.prediction_column, description.target_column]
    return [*columns, *description.probability_columns.values()]


def _categorical(description: ModelDescription) -> list[str]:
    """Return the columns whose category frequencies are counted (categorical features; classes)."""
    columns = [f for f in description.categorical_features if description.feature(f).monitor]
    if description.is_classification:
        columns += [description.prediction_column, description.target_column]
    return columns


def checked_columns(description: ModelDescription) -> list[str]:
    """Return the columns whose missing share is counted: the reported features and the model's outputs."""
    return [*report_features(description), *description.output_columns]


@dataclass
class PartitionAggregates:
    """A partition's exact counts and sums, its quantile sketches (serialized) and its bottom-k sample."""

    rows: int = 0
    labelled: int = 0
    versions: Counter = field(default_factory=Counter)
    missing: Counter = field(default_factory=Counter)
    out_of_range: Counter = field(default_factory=Counter)
    categories: dict[str, Counter] = field(default_factory=dict)
    sketches: dict[str, bytes] = field(default_factory=dict)
    # Regression over rows with a label and a prediction: n, sum e, sum |e|, sum e^2, sum y, sum y^2, max |e|.
    errors: list[float] = field(default_factory=lambda: [0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    confusion: Counter = field(default_factory=Counter)  # (actual, predicted) -> rows
    probability_sums: list[float] = field(default_factory=lambda: [0, 0.0, 0.0])  # rows, log loss, Brier
    sample: pd.DataFrame | None = None

    def merge(self, other: PartitionAggregates, k: int) -> PartitionAggregates:
        """Return the aggregates of both partitions (the sample: the `k` smallest keys of both)."""
        sketches = dict(self.sketches)
        for column, blob in other.sketches.items():
            if column in sketches:
                merged = kll_doubles_sketch.deserialize(sketches[column])
                merged.merge(kll_doubles_sketch.deserialize(blob))
                sketches[column] = merged.serialize()
            else:
                sketches[column] = blob
        categories = {c: Counter(v) for c, v in self.categories.items()}
        for column, counts in other.categories.items():
            categories.setdefault(column, Counter()).update(counts)
        e, o = self.errors, other.errors
        samples = [s for s in (self.sample, other.sample) if s is not None]
        return PartitionAggregates(
            rows=self.rows + other.rows,
            labelled=self.labelled + other.labelled,
            versions=self.versions + other.versions,
            missing=_add(self.missing, other.missing),
            out_of_range=_add(self.out_of_range, other.out_of_range),
            categories=categories,
            sketches=sketches,
            errors=[*(a + b for a, b in zip(e[:6], o[:6], strict=True)), max(e[6], o[6])],
            confusion=self.confusion + other.confusion,
            probability_sums=[a + b for a, b in zip(self.probability_sums, other.probability_sums, strict=True)],
            sample=bottom_k(pd.concat(samples, ignore_index=True), k) if samples else None,
        )


def _add(a: Counter, b: Counter) -> Counter:
    """Add counters keeping zero counts (Counter's + drops them; a column with no missing value still shows)."""
    total = Counter(a)
    for key, value in b.items():
        total[key] = total.get(key, 0) + value
    return total


def _out_of_range(description: ModelDescription, column: str, values: pd.Series) -> int:
    """Return how many present values fall outside the description's minimum/maximum or known categories."""
    spec = description.fields_by_name.get(column)
    if spec is None or not hasattr(spec, "kind"):
        return 0
    present = values.dropna()
    if spec.kind is Kind.CATEGORICAL and spec.values is not None:
        known = {category_key(v) for v in spec.values}
        return sum(int(n) for value, n in present.value_counts().items() if category_key(value) not in known)
    if spec.minimum is not None or spec.maximum is not None:  # numbers (integer categories may have bounds too)
        numbers = pd.to_numeric(present, errors="coerce")
        outside = pd.Series(False, index=numbers.index)
        if spec.minimum is not None:
            outside |= numbers < spec.minimum
        if spec.maximum is not None:
            outside |= numbers > spec.maximum
        return int(outside.sum())
    return 0


def partition_aggregates(description: ModelDescription, frame: pd.DataFrame, k: int, seed: int) -> PartitionAggregates:
    """Return a partition's aggregates from its typed rows (`io_mongo.read_predictions`' frame) and its sample."""
    target, prediction = description.target_column, description.prediction_column
    result = PartitionAggregates(rows=len(frame))
    if frame.empty:
        return result
    result.labelled = int(frame[target].notna().sum())
    versions = frame[MODEL_VERSION].fillna("unknown").value_counts()
    result.versions = Counter({str(v): int(n) for v, n in versions.items()})
    for column in checked_columns(description):
        result.missing[column] = int(frame[column].isna().sum())
        result.out_of_range[column] = _out_of_range(description, column, frame[column])
    for column in _categorical(description):
        counts: Counter = Counter()
        for value, n in frame[column].value_counts().items():  # per distinct value, not per row
            counts[category_key(value)] += int(n)
        result.categories[column] = counts
    for column in _sketched(description):
        values = pd.to_numeric(frame[column], errors="coerce").dropna().to_numpy(dtype=float)
        if len(values):
            sketch = kll_doubles_sketch(KLL_K)
            sketch.update(values)
            result.sketches[column] = sketch.serialize()
    labelled = frame[frame[target].notna() & frame[prediction].notna()]
    if description.is_classification:
        pairs = pd.DataFrame({"a": labelled[target].astype(str), "p": labelled[prediction].astype(str)})
        result.confusion = Counter({(a, p): int(n) for (a, p), n in pairs.value_counts().items()})
        result.probability_sums = _probability_sums(description, labelled)
    elif len(labelled):
        y = labelled[target].to_numpy(dtype=float)
        e = labelled[prediction].to_numpy(dtype=float) - y
        result.errors = [
            len(e),
            float(e.sum()),
            float(np.abs(e).sum()),
            float((e**2).sum()),
            float(y.sum()),
            float((y**2).sum()),
            float(np.abs(e).max()),
        ]
    sample = frame.assign(**{SAMPLE_KEY: sample_keys(frame[REQUEST_ID], seed)})
    result.sample = bottom_k(sample, k).reset_index(drop=True)
    return result


def _probability_sums(description: ModelDescription, labelled: pd.DataFrame) -> list[float]:
    """Return [rows, sum of log loss, sum of Brier] over labelled rows with every class's probability."""
    columns = description.probability_columns
    classes = list(description.class_keys)
    if not columns or set(columns) != set(classes) or labelled.empty:
        return [0, 0.0, 0.0]
    probabilities = labelled[[columns[c] for c in classes]].to_numpy(dtype=float)
    complete = ~np.isnan(probabilities).any(axis=1)
    probabilities = probabilities[complete]
    actual = labelled[description.target_column].astype(str).to_numpy()[complete]
    onehot = (actual[:, None] == np.array(classes)[None, :]).astype(float)
    # The same definitions as prefect_flows.quality.classification_metrics, as sums.
    actual_probability = np.clip(np.sum(probabilities * onehot, axis=1), np.finfo(float).eps, 1.0)
    brier = np.sum((probabilities - onehot) ** 2, axis=1) / 2
    return [int(len(actual)), float(np.sum(-np.log(actual_probability))), float(np.sum(brier))]


def merge_all(parts: list[PartitionAggregates], k: int) -> PartitionAggregates:
    """Return the merge of many partitions' aggregates."""
    total = PartitionAggregates()
    for part in parts:
        total = total.merge(part, k)
    return total


def period_sample(total: PartitionAggregates) -> pd.DataFrame:
    """Return the merged sample's rows in serving order, without the sampling key."""
    if total.sample is None:
        return pd.DataFrame()
    sample = total.sample.drop(columns=[SAMPLE_KEY])
    if TIMESTAMP in sample.columns:
        sample = sample.sort_values([TIMESTAMP, REQUEST_ID], kind="stable")
    return sample.reset_index(drop=True)


def quantiles(total: PartitionAggregates) -> dict[str, dict[str, float]]:
    """Return each sketched column's quantiles (KLL, rank error KLL_RANK_ERROR) and its exact min and max."""
    values: dict[str, dict[str, float]] = {}
    for column, blob in total.sketches.items():
        sketch = kll_doubles_sketch.deserialize(blob)
        values[column] = {
            "min": float(sketch.get_min_value()),
            **{f"p{round(q * 100):02d}": float(sketch.get_quantile(q)) for q in QUANTILES},
            "max": float(sketch.get_max_value()),
        }
    return values


def regression_quality(total: PartitionAggregates) -> dict[str, float] | None:
    """Return RMSE, MAE, mean error (prediction - target), R2 and max absolute error from the sums."""
    n, s, sa, sq, sy, syy, mx = total.errors
    if not n:
        return None
    spread = syy - sy * sy / n  # sum of squared deviations of the target
    return {
        "rmse": math.sqrt(sq / n),
        "mae": sa / n,
        "mean_error": s / n,
        "r2": 1 - sq / spread if spread > 0 else float("nan"),
        "abs_max_error": mx,
    }


def classification_quality(
    description: ModelDescription, total: PartitionAggregates
) -> tuple[dict[str, float], dict[str, dict[str, float]]] | None:
    """Return accuracy, macro precision/recall/F1 (and log loss, Brier) and the per-class table, from the counts."""
    rows = sum(total.confusion.values())
    if not rows:
        return None
    classes = list(description.class_keys)
    per_class: dict[str, dict[str, float]] = {}
    for c in classes:
        tp = total.confusion.get((c, c), 0)
        predicted = sum(n for (_, p), n in total.confusion.items() if p == c)
        support = sum(n for (a, _), n in total.confusion.items() if a == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[c] = {"precision": precision, "recall": recall, "f1": f1, "support": int(support)}
    overall = {
        "accuracy": sum(total.confusion.get((c, c), 0) for c in classes) / rows,
        "f1_macro": float(np.mean([v["f1"] for v in per_class.values()])),
        "precision_macro": float(np.mean([v["precision"] for v in per_class.values()])),
        "recall_macro": float(np.mean([v["recall"] for v in per_class.values()])),
    }
    n, log_loss, brier = total.probability_sums
    if n:
        overall.update(log_loss=log_loss / n, brier=brier / n)
    return overall, per_class


def exact_summary(description: ModelDescription, total: PartitionAggregates) -> dict[str, Any]:
    """Return the summary's `exact` block: counts and shares over every row of the period, and quantiles."""
    rows = total.rows

    def share(count: int, of: int) -> float | None:
        return count / of if of else None

    return {
        "rows": rows,
        "labelled": total.labelled,
        "label_coverage": share(total.labelled, rows),
        "model_versions": dict(total.versions),
        "missing_share": {c: share(n, rows) for c, n in total.missing.items()},
        # Over the column's present values: outside the description's minimum/maximum or known categories.
        "out_of_range_share": {c: share(n, rows - total.missing.get(c, 0)) for c, n in total.out_of_range.items()},
        "categories": {c: dict(v.most_common()) for c, v in total.categories.items()},
        "quantiles": quantiles(total),
        "quantile_rank_error": KLL_RANK_ERROR,
        "quantile_method": f"Apache DataSketches KLL (k={KLL_K}), merged across partitions; min and max exact",
    }
