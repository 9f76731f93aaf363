"""Performance estimation: the model's quality over a window before its labels arrive.

Two estimators, fitted on the model folder's reference (features, prediction, target and, for a
classifier, class probabilities), each measured on rows it was not fitted on:

- regression, direct loss estimation (DLE): models of the absolute and of the squared error from
  the features and the prediction. Estimated MAE = mean predicted absolute error over the window;
  estimated RMSE = sqrt(mean predicted squared error).
- classification, confidence-based estimation (CBPE): the model's class probabilities, calibrated
  on the reference where that helps on held-out folds, give each row's expected outcome; their sum
  is the expected confusion matrix, hence accuracy, precision, recall and F1 (per class and macro).

Each estimate has a band that should hold the metric the window will *realise* once labelled, at
`LEVEL`: the labels' own sampling noise over the window's rows (from the per-row expected losses)
plus the estimator's systematic error measured on the held-out folds. Both estimators rest on one
assumption: the relation between inputs and target is the reference's. Pure concept drift (labels
change for the same inputs) is invisible to them; a realised-minus-estimated gap is its hint.
Design, limits and measurements: docs/performance_estimation.md.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring_core.description import Kind, ModelDescription, category_key
from monitoring_core.reference import read_reference

# The band's coverage of the realised metric (two-sided).
LEVEL = 0.90
ESTIMATOR_FILE = "estimator.joblib"
# Bump when the pickled layout changes: an older file is refused (re-run prepare) rather than misread.
FORMAT_VERSION = 2  # 2: two-stage loss models, their number of stumps chosen on held-out folds (refit older)
FOLDS = 5
MIN_REFERENCE_ROWS = 200
# Categorical features keep their most frequent categories as codes; the rest share one code.
MAX_CATEGORIES = 250
# The regression loss models: boosted stumps at this rate, as many as predict held-out folds best (at most
# MAX_STUMPS).
LEARNING_RATE = 0.1
MAX_STUMPS = 300
NO_PROBABILITIES = "no estimate: the model gives no probabilities"

REGRESSION_ESTIMATES = ("mae", "rmse")
CLASSIFICATION_ESTIMATES = ("accuracy", "f1_macro", "precision_macro", "recall_macro")
CLASS_ESTIMATES = ("precision", "recall", "f1")

_Z = 1.6448536269514722  # the standard normal's 95th percentile: a two-sided 90% band


class EstimatorError(ValueError):
    """An estimator file is missing, stale (its reference or description changed) or unreadable."""


@dataclass(frozen=True)
class EstimatedValue:
    """One metric's estimate and its band [low, high] at the estimate's level."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Gap:
    """Realised minus estimated (in the metric's unit), and whether the realised value is outside the band."""

    value: float
    outside_band: bool


@dataclass(frozen=True)
class Estimate:
    """The estimated metrics of a window's rows, labelled or not; `reason` says why there are none."""

    rows: int
    level: float
    metrics: dict[str, EstimatedValue] = field(default_factory=dict)
    classes: dict[str, dict[str, EstimatedValue]] = field(default_factory=dict)  # class -> precision/recall/f1
    reason: str | None = None

    def gaps(self, realised: dict[str, float]) -> dict[str, Gap]:
        """Return, per metric both have, realised minus estimated and whether the realised value left the band.

        Meaningful when this estimate was made on the same labelled rows the realised metric comes
        from: a realised value outside the band, window after window, hints at concept drift.
        """
        return {
            metric: Gap(realised[metric] - band.value, not band.low <= realised[metric] <= band.high)
            for metric, band in self.metrics.items()
            if metric in realised and realised[metric] is not None and math.isfinite(realised[metric])
        }

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view (for a report or an API answer)."""
        return {
            "rows": self.rows,
            "level": self.level,
            "reason": self.reason,
            "metrics": {m: vars(v) for m, v in self.metrics.items()},
            "classes": {c: {m: vars(v) for m, v in per.items()} for c, per in self.classes.items()},
        }


# -- inputs ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Inputs:
    """Turns a frame's features and prediction into the numeric matrix the loss models read."""

    numerical: tuple[str, ...]
    categorical: dict[str, pd.Index]  # column -> the reference's categories as text, most frequent first
    datetimes: dict[str, str | None]  # column -> time zone for tz-aware values
    prediction: str

    @classmethod
    def from_reference(cls, description: ModelDescription, reference: pd.DataFrame) -> _Inputs:
        # A feature the reference never holds a value of teaches the loss models nothing (and a column of
        # missing values only breaks their binning): left out, as a feature absent from the reference is.
        present = [f for f in description.features if f.name in reference.columns and reference[f.name].notna().any()]
        categorical = {}
        for spec in present:
            if spec.kind is Kind.CATEGORICAL:
                texts = _category_texts(reference[spec.name].dropna().to_numpy())
                categorical[spec.name] = pd.Index(texts.value_counts().index)  # most frequent first
        return cls(
            numerical=tuple(
                f.name
                for f in present
                if f.kind is Kind.NUMERICAL and pd.to_numeric(reference[f.name], errors="coerce").notna().any()
            ),
            categorical=categorical,
            datetimes={f.name: f.timezone for f in present if f.kind is Kind.DATETIME},
            prediction=description.prediction_column,
        )

    @property
    def categorical_mask(self) -> np.ndarray:
        # Categories first: the boosted trees number their inputs that way internally (see _compile).
        kinds = [True] * len(self.categorical) + [False] * (len(self.numerical) + 2 * len(self.datetimes))
        return np.array([*kinds, False])

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Return one row per frame row: category codes, numericals, hour and weekday per datetime, prediction."""
        n = len(frame)
        columns = [_codes(frame, name, codes, n) for name, codes in self.categorical.items()]
        columns.extend(_numbers(frame, name, n) for name in self.numerical)
        for name, zone in self.datetimes.items():
            columns.extend(_hour_and_weekday(frame, name, zone, n))
        columns.append(_numbers(frame, self.prediction, n))
        return np.column_stack(columns) if columns else np.empty((n, 0))


def _numbers(frame: pd.DataFrame, name: str, n: int) -> np.ndarray:
    if name not in frame.columns:
        return np.full(n, np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _codes(frame: pd.DataFrame, name: str, known: pd.Index, n: int) -> np.ndarray:
    if name not in frame.columns:
        return np.full(n, np.nan)
    # Categories are compared as text (3, 3.0 and "3" are one); the reference's categories are coded by
    # frequency, its rare ones share the last code, unseen ones are missing to the models.
    index, uniques = pd.factorize(frame[name], use_na_sentinel=True)
    position = known.get_indexer(_category_texts(uniques)).astype(float)
    position[position < 0] = np.nan
    lookup = np.append(np.minimum(position, MAX_CATEGORIES), np.nan)
    return lookup[index]


def _category_texts(values: Any) -> pd.Index:
    """Return `category_key` of every value, vectorised for the common dtypes."""
    values = pd.Index(values)
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype(str)
    if pd.api.types.is_float_dtype(values.dtype):
        numbers = values.to_numpy(dtype=float)
        if np.all(np.isfinite(numbers) & (numbers == np.round(numbers))):
            return pd.Index(numbers.astype(np.int64)).astype(str)
    if pd.api.types.is_string_dtype(values.dtype) and all(isinstance(v, str) for v in values):
        return values
    return pd.Index([category_key(v) for v in values])


def _hour_and_weekday(frame: pd.DataFrame, name: str, zone: str | None, n: int) -> list[np.ndarray]:
    if name not in frame.columns:
        return [np.full(n, np.nan), np.full(n, np.nan)]
    values = frame[name]
    if pd.api.types.is_numeric_dtype(values):  # the metrics service's window keeps epoch seconds of local time
        seconds = values.to_numpy(dtype=float, na_value=np.nan)
    else:
        times = values if pd.api.types.is_datetime64_any_dtype(values) else pd.to_datetime(values, errors="coerce")
        if isinstance(times.dtype, pd.DatetimeTZDtype):
            times = (times.dt.tz_convert(zone) if zone else times.dt.tz_convert("UTC")).dt.tz_localize(None)
        nanos = times.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
        seconds = np.where(times.isna().to_numpy(), np.nan, nanos / 1e9)
    days = np.floor(seconds / 86400.0)
    return [(seconds - days * 86400.0) / 3600.0, (days + 3.0) % 7.0]  # 1970-01-01 was a Thursday (3)


# -- an additive loss model compiled to lookups -------------------------------------------------------------
@dataclass(frozen=True)
class _AdditiveModel:
    """exp(intercept + sum_j f_j(x_j)) with each f_j piecewise constant: gradient-boosted stumps, compiled.

    Stumps (one split per tree) keep the model additive in its inputs, so each input's effect is a
    lookup table: an evaluation is one searchsorted per numeric input, microseconds for 2,000 rows
    where the boosted trees' own predict costs milliseconds. Interactions enter through the model's
    prediction, which is an input.
    """

    intercept: float
    edges: tuple[np.ndarray, ...]  # per input: split points (numeric) or empty (categorical)
    values: tuple[np.ndarray, ...]  # numeric: len(edges) + 2 (last = missing); categorical: codes + 1
    categorical: tuple[bool, ...]

    def log_predict(self, x: np.ndarray) -> np.ndarray:
        total = np.full(len(x), self.intercept)
        for j, (edges, values, is_cat) in enumerate(zip(self.edges, self.values, self.categorical, strict=True)):
            column = x[:, j]
            missing = np.isnan(column)
            if is_cat:
                index = np.where(missing | (column >= len(values) - 1), len(values) - 1, column)
                total += values[np.nan_to_num(index, nan=len(values) - 1).astype(np.intp)]
            else:
                index = np.searchsorted(edges, column, side="left")
                index[missing] = len(values) - 1
                total += values[index]
        return total

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.exp(self.log_predict(x))


def _stumps(categorical: np.ndarray, seed: int, iterations: int) -> Any:
    """Return unfitted boosted stumps with a Poisson loss (a positive conditional mean), `iterations` of them."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        loss="poisson",
        max_leaf_nodes=2,  # stumps: additive, hence compilable to per-input lookups
        learning_rate=LEARNING_RATE,
        max_iter=iterations,
        # Small leaves: a category group (or a rare value range) of a few dozen rows may carry its own
        # loss level; the number of stumps, chosen on held-out folds, is the regularisation.
        min_samples_leaf=10,
        l2_regularization=1.0,
        categorical_features=categorical if categorical.any() else None,
        early_stopping=False,  # the folds choose the number of stumps (see _fit_regression)
        random_state=seed,
    )


def _fit_stumps(
    x: np.ndarray, y: np.ndarray, categorical: np.ndarray, seed: int, iterations: int, base: np.ndarray | None = None
) -> Any:
    """Fit stumps of log(E[y] / base) (a Poisson fit with offset log(base): y / base weighted by base)."""
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: these fits are small, and on a shared machine (or beside the services) OpenMP's
    # spinning threads made them 20 times slower than one thread under load.
    with threadpool_limits(limits=1, user_api="openmp"):
        if base is None:
            return _stumps(categorical, seed, iterations).fit(x, y)
        return _stumps(categorical, seed, iterations).fit(x, y / base, sample_weight=base)


def _staged(model: Any, x: np.ndarray) -> Any:
    """Yield the model's predictions on `x` after each stump (one OpenMP thread)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield from model.staged_predict(x)


def _compiled(model: Any, x: np.ndarray, categorical: np.ndarray) -> _AdditiveModel:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        compiled = _compile(model, x, categorical)
        check = x[: min(len(x), 500)]
        if not np.allclose(compiled.log_predict(check), np.log(model.predict(check)), atol=1e-6):
            raise RuntimeError("the compiled loss model disagrees with the fitted one (scikit-learn changed?)")
    return compiled


def _best_count(models: list, x: np.ndarray, y: np.ndarray, fold: np.ndarray, base: np.ndarray) -> int:
    """Return the number of stumps whose held-out Poisson deviance (offset `base`), summed over the folds, is least."""
    deviance = np.zeros(MAX_STUMPS)
    for k, model in enumerate(models):
        test = fold == k
        for i, ratio in enumerate(_staged(model, x[test])):
            predicted = base[test] * ratio
            deviance[i] += float(np.sum(predicted - y[test] * np.log(predicted)))  # Poisson, up to a constant
    return int(np.argmin(deviance)) + 1


def _at(model: Any, x: np.ndarray, count: int) -> np.ndarray:
    """Return the model's predictions on `x` after its first `count` stumps."""
    return next(itertools.islice(_staged(model, x), count - 1, None))


@dataclass(frozen=True)
class _LossFit:
    """A loss model fitted on every reference row, its held-out predictions, and each fold model's mean level."""

    model: _AdditiveModel
    held_out: np.ndarray
    levels: np.ndarray  # per fold: the fold's model's mean prediction over every reference row
    stumps: tuple[int, int]  # chosen stumps: on the numbers (and prediction), then on the categories


def _fit_loss(x: np.ndarray, y: np.ndarray, categorical: np.ndarray, fold: np.ndarray, seed: int) -> _LossFit:
    """Fit E[loss | x] as exp(numbers' stumps + categories' stumps), each stage's number of stumps chosen on folds.

    The numeric inputs and the prediction are fitted first, the categories then on what those leave (a
    Poisson fit offset by the first stage). Fitted together, a many-valued category soaked up effects that
    belong to the numbers (categories whose rows have large numbers took those numbers' larger loss), which
    then failed to follow a window whose numbers moved within the categories; fitted second, categories
    keep only what the numbers cannot explain. Both stages are stumps, so the sum stays one lookup table per input.
    """
    numbers, categories = np.flatnonzero(~categorical), np.flatnonzero(categorical)
    stages: list[tuple[np.ndarray, int, Any, np.ndarray]] = []  # (columns, stumps, final model, its inputs)
    base_folds, base_all = None, None  # the previous stages' predictions: per fold model, and the final one's
    for columns in (numbers, categories):
        if len(columns) == 0:
            continue
        xs, cat = x[:, columns], categorical[columns]
        # (No weights on the first stage: scikit-learn's weighted binning costs ten times the fit.)
        models = [
            _fit_stumps(
                xs[fold != k],
                y[fold != k],
                cat,
                seed + k,
                MAX_STUMPS,
                None if base_folds is None else base_folds[k][fold != k],
            )
            for k in range(FOLDS)
        ]
        previous = np.ones((FOLDS, len(y))) if base_folds is None else base_folds
        held_base = np.select([fold == k for k in range(FOLDS)], list(previous))
        count = _best_count(models, xs, y, fold, held_base)
        base_folds = np.vstack([previous[k] * _at(model, xs, count) for k, model in enumerate(models)])
        final = _fit_stumps(xs, y, cat, seed, count, base_all)
        base_all = final.predict(xs) if base_all is None else base_all * final.predict(xs)
        stages.append((columns, count, final, xs))
    # One lookup table per input: each stage's tables, their intercepts added.
    intercept, edges, values = 0.0, [np.empty(0)] * x.shape[1], [np.zeros(2)] * x.shape[1]
    for columns, _, final, xs in stages:
        compiled = _compiled(final, xs, categorical[columns])
        intercept += compiled.intercept
        for j, column in enumerate(columns):
            edges[column], values[column] = compiled.edges[j], compiled.values[j]
    model = _AdditiveModel(intercept, tuple(edges), tuple(values), tuple(bool(c) for c in categorical))
    held_out = np.select([fold == k for k in range(FOLDS)], list(base_folds))
    counts = [count for _, count, _, _ in stages]
    return _LossFit(model, held_out, base_folds.mean(axis=1), (counts[0], counts[1] if len(counts) > 1 else 0))


def _compile(model: Any, x: np.ndarray, categorical: np.ndarray) -> _AdditiveModel:
    """Return boosted stumps as one lookup table per input."""
    # Every split point per numeric input, read from the fitted trees. The trees number inputs with the
    # categorical ones first (their ordinal encoder's output, then the rest): the order `_Inputs` builds.
    remapped = getattr(model, "_is_categorical_remapped", None)
    if remapped is not None and not np.array_equal(remapped, categorical):
        raise RuntimeError("the boosted trees reordered their inputs (scikit-learn internals changed?)")
    splits: list[set[float]] = [set() for _ in range(x.shape[1])]
    for (tree,) in model._predictors:  # one tree per iteration (single output)
        for node in tree.nodes:
            if not node["is_leaf"] and not node["is_categorical"]:
                splits[node["feature_idx"]].add(float(node["num_threshold"]))
    edges = tuple(np.array(sorted(s)) for s in splits)
    # Read each input's effect off the model at probe points, holding the others missing.
    base = np.full((1, x.shape[1]), np.nan)
    probes, owners = [base], []
    for j in range(x.shape[1]):
        if categorical[j]:
            codes = int(np.nanmax(x[:, j])) + 2 if np.isfinite(x[:, j]).any() else 1
            points = np.append(np.arange(codes, dtype=float), np.nan)
        else:
            above = edges[j][-1] + 1.0 if len(edges[j]) else 0.0
            points = np.concatenate([edges[j], [above, np.nan]])
        block = np.repeat(base, len(points), axis=0)
        block[:, j] = points
        probes.append(block)
        owners.append(len(points))
    raw = np.log(model.predict(np.vstack(probes)))
    intercept, offset, values = float(raw[0]), 1, []
    for count in owners:
        values.append(raw[offset : offset + count] - intercept)
        offset += count
    return _AdditiveModel(intercept, edges, tuple(values), tuple(bool(c) for c in categorical))


# -- bands ----------------------------------------------------------------------------------------------
def _positive_band(mean: float, variance: float) -> tuple[float, float]:
    """Return the LEVEL band of a positive mean of skewed losses: a log-normal with that mean and variance."""
    if mean <= 0 or variance <= 0:
        return mean, mean
    sigma2 = math.log1p(variance / mean**2)
    mu = math.log(mean) - sigma2 / 2
    spread = _Z * math.sqrt(sigma2)
    return math.exp(mu - spread), math.exp(mu + spread)


def _bounded_band(value: float, variance: float) -> tuple[float, float]:
    spread = _Z * math.sqrt(max(variance, 0.0))
    return max(value - spread, 0.0), min(value + spread, 1.0)


def _systematic(realised: float, estimated: float, sampling_variance: float) -> float:
    """Return the estimator's systematic error variance: the held-out bias beyond what sampling explains."""
    return max((realised - estimated) ** 2 - sampling_variance, 0.0)


# -- regression: direct loss estimation ---------------------------------------------------------------------
@dataclass(frozen=True)
class _LossEstimator:
    inputs: _Inputs
    absolute: _AdditiveModel
    squared: _AdditiveModel
    # Var(|e| | x) ~ rho_abs * E|e|^2 and Var(e^2 | x) ~ rho_sq * E[e^2]^2 (a scale family), from held-out rows.
    rho_abs: float
    rho_sq: float
    # The estimate's own relative error variance, whatever the window's size: the level learned from the
    # reference's finite rows, plus any held-out bias beyond sampling; per "mae" and "mse".
    level_var: dict[str, float]

    def estimate(self, frame: pd.DataFrame) -> Estimate:
        x = self.inputs.matrix(frame)
        x = x[~np.isnan(x[:, -1])]  # rows without a prediction have no loss
        n = len(x)
        if n == 0:
            return Estimate(rows=0, level=LEVEL, reason="no estimate: no rows with a prediction")
        absolute, squared = self.absolute.predict(x), self.squared.predict(x)
        mae, mse = float(absolute.mean()), float(squared.mean())
        mae_var = self.rho_abs * float(absolute @ absolute) / n**2 + self.level_var["mae"] * mae**2
        mse_var = self.rho_sq * float(squared @ squared) / n**2 + self.level_var["mse"] * mse**2
        mae_low, mae_high = _positive_band(mae, mae_var)
        mse_low, mse_high = _positive_band(mse, mse_var)
        return Estimate(
            rows=n,
            level=LEVEL,
            metrics={
                "mae": EstimatedValue(mae, mae_low, mae_high),
                "rmse": EstimatedValue(math.sqrt(mse), math.sqrt(mse_low), math.sqrt(mse_high)),
            },
        )


def _labelled(description: ModelDescription, reference: pd.DataFrame) -> pd.DataFrame:
    target, prediction = description.target_column, description.prediction_column
    for column in (target, prediction):
        if column not in reference.columns:
            raise ValueError(f"the reference has no {column!r} column: performance cannot be estimated")
    return reference[reference[target].notna() & reference[prediction].notna()].reset_index(drop=True)


def _folds(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n) % FOLDS


def _fit_regression(description: ModelDescription, reference: pd.DataFrame, seed: int) -> tuple[_LossEstimator, dict]:
    inputs = _Inputs.from_reference(description, reference)
    x = inputs.matrix(reference)
    error = reference[description.target_column].to_numpy(dtype=float) - x[:, -1]
    absolute, squared = np.abs(error), error**2
    if not absolute.any():
        raise ValueError(
            "the reference's predictions equal its target on every row, so there is no error to learn from "
            "(was the reference scored on the rows the model was trained on?)"
        )
    mask = inputs.categorical_mask
    # Held-out predictions: each fold judged by loss models fitted on the other folds (which also choose the
    # number of stumps, see _fit_loss); the served models are fitted on every row.
    fold = _folds(len(x), seed)
    fits = [_fit_loss(x, loss, mask, fold, seed) for loss in (absolute, squared)]
    abs_hat, sq_hat = fits[0].held_out, fits[1].held_out
    levels = np.column_stack([fits[0].levels, fits[1].levels])  # each fold's models' mean loss over every row
    # Delete-a-fold jackknife: how much the learned level moves with the rows it was fitted on.
    jackknife = (FOLDS - 1) / FOLDS * ((levels - levels.mean(axis=0)) ** 2).sum(axis=0)
    rho_abs = float(np.mean((absolute - abs_hat) ** 2) / np.mean(abs_hat**2))
    rho_sq = float(np.mean((squared - sq_hat) ** 2) / np.mean(sq_hat**2))
    n = len(x)
    level_var = {}
    for column, (name, loss, hat, rho) in enumerate(
        (("mae", absolute, abs_hat, rho_abs), ("mse", squared, sq_hat, rho_sq))
    ):
        sampling = rho * float(hat @ hat) / n**2  # the reference's own sampling noise in the learned level
        learned = max(sampling, float(jackknife[column]))  # ...or the fit's, when the jackknife finds it larger
        level_var[name] = (learned + _systematic(loss.mean(), hat.mean(), sampling)) / hat.mean() ** 2
    estimator = _LossEstimator(
        inputs=inputs,
        absolute=fits[0].model,
        squared=fits[1].model,
        rho_abs=rho_abs,
        rho_sq=rho_sq,
        level_var=level_var,
    )
    held_out = {
        "mae": {"realised": float(absolute.mean()), "estimated": float(abs_hat.mean())},
        "rmse": {"realised": float(math.sqrt(squared.mean())), "estimated": float(math.sqrt(sq_hat.mean()))},
        "stumps": {"absolute": list(fits[0].stumps), "squared": list(fits[1].stumps)},
    }
    return estimator, held_out


# -- classification: confidence-based estimation ------------------------------------------------------------
@dataclass(frozen=True)
class _Calibration:
    """Per-class probability maps (one-vs-rest), then rows renormalised: isotonic, Platt, or none."""

    method: str  # "none" | "isotonic" | "platt"
    params: tuple[tuple[np.ndarray, np.ndarray], ...] = ()  # isotonic (x, y) knots or Platt ([a], [b]) per class

    def apply(self, p: np.ndarray) -> np.ndarray:
        if self.method == "none":
            q = p
        elif self.method == "isotonic":
            q = np.column_stack([np.interp(p[:, c], kx, ky) for c, (kx, ky) in enumerate(self.params)])
        else:
            logit = np.log(np.clip(p, 1e-9, 1 - 1e-9) / np.clip(1 - p, 1e-9, 1))
            q = np.column_stack(
                [1 / (1 + np.exp(-(a[0] * logit[:, c] + b[0]))) for c, (a, b) in enumerate(self.params)]
            )
        total = q.sum(axis=1, keepdims=True)
        return np.where(total > 0, q / np.where(total > 0, total, 1), 1.0 / p.shape[1])


def _fit_calibration(method: str, p: np.ndarray, y: np.ndarray) -> _Calibration:
    if method == "none":
        return _Calibration("none")
    params = []
    for c in range(p.shape[1]):
        hit = (y == c).astype(float)
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[:, c], hit)
            params.append((np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)))
        else:
            from sklearn.linear_model import LogisticRegression

            logit = np.log(np.clip(p[:, c], 1e-9, 1 - 1e-9) / np.clip(1 - p[:, c], 1e-9, 1))[:, None]
            fit = LogisticRegression(C=1e4).fit(logit, hit) if 0 < hit.sum() < len(hit) else None
            a, b = (fit.coef_[0][0], fit.intercept_[0]) if fit is not None else (1.0, 0.0)
            params.append((np.array([a]), np.array([b])))
    return _Calibration(method, tuple(params))


def _brier(q: np.ndarray, y: np.ndarray) -> float:
    onehot = np.zeros_like(q)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((q - onehot) ** 2, axis=1)))


@dataclass(frozen=True)
class _ConfidenceEstimator:
    classes: tuple[str, ...]
    probability_columns: tuple[str | None, ...]  # per class; a binary model may give the positive class's only
    prediction: str
    calibration: _Calibration
    # The estimate's own error variance per metric (macro metrics and "class:metric"), whatever the window's
    # size: the calibration learned from the reference's finite rows, plus any held-out bias beyond sampling.
    level_var: dict[str, float]

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        n = len(frame)
        p = np.column_stack(
            [_numbers(frame, c, n) if c is not None else np.full(n, np.nan) for c in self.probability_columns]
        )
        absent = [i for i, c in enumerate(self.probability_columns) if c is None]
        if len(absent) == 1:  # every class's probability but one given: that one is their complement
            others = np.delete(p, absent[0], axis=1)
            p[:, absent[0]] = np.clip(1.0 - others.sum(axis=1), 0.0, 1.0)
        return p

    def predicted(self, frame: pd.DataFrame, p: np.ndarray) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        if self.prediction in frame.columns:
            codes, uniques = pd.factorize(frame[self.prediction], use_na_sentinel=True)
            lookup = np.array([index.get(category_key(u), -1) for u in uniques] + [-1])
            predicted = lookup[codes]
        else:
            predicted = np.full(len(frame), -1)
        return np.where(predicted >= 0, predicted, np.nanargmax(np.nan_to_num(p, nan=-1.0), axis=1))

    def estimate(self, frame: pd.DataFrame) -> Estimate:
        p = self.probabilities(frame)
        keep = ~np.isnan(p).any(axis=1)
        p, predicted = p[keep], self.predicted(frame, p)[keep]
        if len(p) == 0:
            return Estimate(rows=0, level=LEVEL, reason="no estimate: no rows with class probabilities")
        metrics, classes = _expected_metrics(self.calibration.apply(p), predicted, self.classes)
        banded = {
            name: EstimatedValue(value, *_bounded_band(value, variance + self.level_var.get(name, 0.0)))
            for name, (value, variance) in metrics.items()
        }
        per_class = {c: {m: banded.pop(f"{c}:{m}") for m in CLASS_ESTIMATES if f"{c}:{m}" in banded} for c in classes}
        return Estimate(rows=len(p), level=LEVEL, metrics=banded, classes=per_class)


def _expected_metrics(q: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]) -> tuple[dict, tuple]:
    """Return {metric: (expected value, sampling variance)} from calibrated probabilities and predicted classes.

    The expected confusion matrix gives the values. Every metric is a function of the true-positive
    and false-negative counts per class (predicted counts are fixed by the rows); the variance is
    the delta method's: each row's outcome is one draw of its class, so a metric with gradient g_c
    (w.r.t. TP_c if c is the row's predicted class, else FN_c) varies by sum_i Var_{y~q_i}[g_y].
    """
    n, k = q.shape
    hits = np.zeros((n, k), dtype=bool)
    hits[np.arange(n), predicted] = True
    tp = (q * hits).sum(axis=0)  # expected true positives per class
    actual = q.sum(axis=0)  # expected rows per actual class (TP + FN)
    fn = actual - tp
    pred_count = hits.sum(axis=0).astype(float)

    def safe(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0)

    precision, recall = safe(tp, pred_count), safe(tp, actual)
    f1 = safe(2 * tp, pred_count + actual)
    # Gradients w.r.t. TP_c and FN_c per class.
    d_prec_tp, d_prec_fn = safe(np.ones(k), pred_count), np.zeros(k)
    d_rec_tp, d_rec_fn = safe(fn, actual**2), safe(-tp, actual**2)
    denom = pred_count + actual
    d_f1_tp, d_f1_fn = safe(2 * (pred_count + fn), denom**2), safe(-2 * tp, denom**2)

    def variance(g_tp: np.ndarray, g_fn: np.ndarray) -> float:
        # w[i, c]: the metric's change if row i's true class is c.
        w = np.where(hits, g_tp[None, :], g_fn[None, :])
        return float(np.sum((q * w * w).sum(axis=1) - (q * w).sum(axis=1) ** 2))

    metrics: dict[str, tuple[float, float]] = {
        "accuracy": (float(tp.sum() / n), variance(np.full(k, 1.0 / n), np.zeros(k))),
        "f1_macro": (float(f1.mean()), variance(d_f1_tp / k, d_f1_fn / k)),
        "precision_macro": (float(precision.mean()), variance(d_prec_tp / k, d_prec_fn)),
        "recall_macro": (float(recall.mean()), variance(d_rec_tp / k, d_rec_fn / k)),
    }
    # A per-class metric moves only with its own class's outcome: Var_i = q_ic (1 - q_ic) w_ic^2.
    spread = q * (1 - q)
    for metric, value, g_tp, g_fn in (
        ("precision", precision, d_prec_tp, d_prec_fn),
        ("recall", recall, d_rec_tp, d_rec_fn),
        ("f1", f1, d_f1_tp, d_f1_fn),
    ):
        w = np.where(hits, g_tp[None, :], g_fn[None, :])
        variances = (spread * w * w).sum(axis=0)
        for c, name in enumerate(classes):
            metrics[f"{name}:{metric}"] = (float(value[c]), float(variances[c]))
    return metrics, classes


def _realised_metrics(y: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    """Return the metrics the labels realise (the same definitions as `_expected_metrics`)."""
    onehot = np.zeros((len(y), len(classes)))
    onehot[np.arange(len(y)), y] = 1.0
    return {name: value for name, (value, _) in _expected_metrics(onehot, predicted, classes)[0].items()}


def _fit_classification(
    description: ModelDescription, reference: pd.DataFrame, seed: int
) -> tuple[_ConfidenceEstimator, dict]:
    classes = description.class_keys
    columns = tuple(description.probability_columns.get(c) for c in classes)
    labels = reference[description.target_column].map(category_key)
    index = {c: i for i, c in enumerate(classes)}
    known = labels.isin(index).to_numpy()
    reference = reference[known].reset_index(drop=True)
    y = labels[known].map(index).to_numpy(dtype=int)
    base = _ConfidenceEstimator(classes, columns, description.prediction_column, _Calibration("none"), {})
    p = base.probabilities(reference)
    keep = ~np.isnan(p).any(axis=1)
    p, y, predicted = p[keep], y[keep], base.predicted(reference, p)[keep]
    if len(p) < MIN_REFERENCE_ROWS:
        raise ValueError(f"the reference has {len(p)} labelled rows with probabilities; at least {MIN_REFERENCE_ROWS}")
    # Choose the calibration that predicts held-out folds best (Brier score); "none" when the model's is good.
    fold = _folds(len(p), seed)
    held_out = {m: np.empty_like(p) for m in ("none", "isotonic", "platt")}
    for k in range(FOLDS):
        train, test = fold != k, fold == k
        for method, q in held_out.items():
            q[test] = _fit_calibration(method, p[train], y[train]).apply(p[test])
    scores = {m: _brier(q, y) for m, q in held_out.items()}
    method = min(scores, key=lambda m: (scores[m], m != "none"))
    expected, _ = _expected_metrics(held_out[method], predicted, classes)
    realised = _realised_metrics(y, predicted, classes)
    level_var = {
        name: variance + _systematic(realised[name], value, variance) for name, (value, variance) in expected.items()
    }
    estimator = _ConfidenceEstimator(
        classes, columns, description.prediction_column, _fit_calibration(method, p, y), level_var
    )
    report = {
        "calibration": method,
        "brier_held_out": scores,
        **{m: {"realised": realised[m], "estimated": expected[m][0]} for m in CLASSIFICATION_ESTIMATES},
    }
    return estimator, report


# -- the public estimator -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PerformanceEstimator:
    """A model's fitted performance estimator (or the reason it has none); `estimate` judges any window."""

    model: str
    task: str
    metrics: tuple[str, ...]
    level: float = LEVEL
    reason: str | None = None  # set when there is no estimator, e.g. a classifier without probabilities
    held_out: dict = field(default_factory=dict)  # the folds' realised vs estimated metrics, for the docs/report
    content_hash: str | None = None  # the model folder's content hash this was fitted from
    fitted: Any = field(default=None, repr=False)  # the task's estimator; None when `reason` says why not

    def estimate(self, window: pd.DataFrame) -> Estimate:
        """Return the estimated metrics of the window's rows, whether or not they are labelled."""
        if self.fitted is None:
            return Estimate(rows=len(window), level=self.level, reason=self.reason)
        return self.fitted.estimate(window)

    def to_file(self, path: Path | str) -> None:
        """Write the estimator (joblib) to `path`, creating its folder."""
        import joblib
        import sklearn

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT_VERSION, "sklearn": sklearn.__version__, "estimator": self}
        tmp = path.with_suffix(path.suffix + ".tmp")
        joblib.dump(payload, tmp)
        tmp.replace(path)  # readers never see half a file

    @classmethod
    def from_file(cls, path: Path | str, content_hash: str | None = None) -> PerformanceEstimator:
        """Read an estimator; EstimatorError if it is missing, of another format, or fitted from other content."""
        import joblib

        path = Path(path)
        if not path.is_file():
            raise EstimatorError(f"{path}: no performance estimator (run the prepare command)")
        try:
            payload = joblib.load(path)
        except Exception as exc:  # a truncated or foreign file: say which, whatever the unpickler raised
            raise EstimatorError(f"{path}: unreadable performance estimator: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise EstimatorError(f"{path}: estimator of another format (run the prepare command again)")
        estimator = payload["estimator"]
        if content_hash is not None and estimator.content_hash != content_hash:
            raise EstimatorError(
                f"{path}: fitted from content {estimator.content_hash}, the model folder is now {content_hash}"
                " (run the prepare command again)"
            )
        return estimator


def fit_estimator(
    description: ModelDescription, reference: pd.DataFrame, seed: int = 0, content_hash: str | None = None
) -> PerformanceEstimator:
    """Fit the task's estimator on the reference (measured on held-out folds, then fitted on every row)."""
    common = {"model": description.name, "task": description.task.value, "content_hash": content_hash}
    if description.is_classification:
        metrics = (*CLASSIFICATION_ESTIMATES, *(f"{c}:{m}" for c in description.class_keys for m in CLASS_ESTIMATES))
        if not description.probability_columns:
            return PerformanceEstimator(metrics=(), reason=NO_PROBABILITIES, **common)
        absent = [c for c in description.class_keys if c not in description.probability_columns]
        if len(absent) > 1:  # one missing class is the others' complement; two or more cannot be told apart
            return PerformanceEstimator(
                metrics=(),
                reason=f"no estimate: prediction.probabilities lacks the classes {absent} "
                "(at most one may be left out)",
                **common,
            )
        fitted, held_out = _fit_classification(description, _labelled(description, reference), seed)
    else:
        metrics = REGRESSION_ESTIMATES
        labelled = _labelled(description, reference)
        if len(labelled) < MIN_REFERENCE_ROWS:
            raise ValueError(f"the reference has {len(labelled)} labelled rows; at least {MIN_REFERENCE_ROWS}")
        fitted, held_out = _fit_regression(description, labelled, seed)
    return PerformanceEstimator(metrics=metrics, held_out=held_out, fitted=fitted, **common)


# -- the model folder ------------------------------------------------------------------------------------
def estimator_path(folder: Any) -> Path:
    """Return where a model folder's estimator lives (`prepared/estimator.joblib`)."""
    return Path(folder.prepared_dir) / ESTIMATOR_FILE


def prepare_estimator(folder: Any, seed: int = 0) -> PerformanceEstimator:
    """Fit the folder's estimator on its reference and write it into `prepared/` with the content hash."""
    reference = read_reference(folder.reference_path)
    content_hash = folder.content_hash()
    try:
        estimator = fit_estimator(folder.description, reference, seed=seed, content_hash=content_hash)
    except ValueError as exc:  # e.g. a reference too small: written too, so the services say why, not "run prepare"
        description = folder.description
        estimator = PerformanceEstimator(
            model=description.name,
            task=description.task.value,
            metrics=(),
            reason=f"no estimate: {exc}",
            content_hash=content_hash,
        )
    estimator.to_file(estimator_path(folder))
    return estimator


def load_estimator(folder: Any) -> PerformanceEstimator:
    """Read the folder's estimator, refusing one fitted from another description or reference."""
    return PerformanceEstimator.from_file(estimator_path(folder), content_hash=folder.content_hash())
