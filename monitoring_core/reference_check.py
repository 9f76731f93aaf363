"""Whether a reference file fits its model's description: one line naming the column when it does not.

Kept apart from the typed reference and the drift evaluators (reference_data.py) so the model folder check
and the prediction service can run it without importing the drift stack (Evidently).
"""

from __future__ import annotations

import pandas as pd

from monitoring_core.description import MAX_CATEGORY_LENGTH, DescriptionError, Kind, ModelDescription, category_key

# A monitored categorical feature may have at most this many categories in the reference (the taxi's zones: 260).
MAX_DRIFT_CATEGORIES = 1000


def described_columns(description: ModelDescription) -> tuple[str, ...]:
    """Return every column the reference must hold: features, target, prediction, class probabilities."""
    return (*description.feature_names, description.target_column, *description.output_columns)


def _problem(source: str, column: str, message: str) -> DescriptionError:
    return DescriptionError(f"{source}: column {column!r}: {message}")


def _texts(values: pd.Series) -> set[str]:
    return {category_key(v) for v in pd.unique(values.dropna())}


def check_reference(description: ModelDescription, frame: pd.DataFrame, source: str) -> None:
    """Raise DescriptionError (one line naming `source` and the column) unless `frame` fits the description."""
    missing = [c for c in described_columns(description) if c not in frame.columns]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise _problem(source, missing[0], f"described in model.yaml but absent from the reference{more}")
    if frame.empty:
        raise DescriptionError(f"{source}: the reference has no row")
    drift_tested = set(description.drift_tests())
    for spec in description.features:
        values = frame[spec.name]
        # pandas' category dtype holds its values in its categories' dtype (integer codes stay integers).
        dtype = values.dtype.categories.dtype if isinstance(values.dtype, pd.CategoricalDtype) else values.dtype
        if spec.kind is Kind.NUMERICAL or (spec.kind is Kind.CATEGORICAL and spec.python_type in (int, float)):
            if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
                raise _problem(source, spec.name, f"{spec.kind.value} {spec.python_type.__name__} but dtype {dtype}")
        elif spec.kind is Kind.DATETIME and not pd.api.types.is_datetime64_any_dtype(values.dtype):
            try:
                pd.to_datetime(values.dropna().head(100))
            except (ValueError, TypeError):
                raise _problem(source, spec.name, f"datetime but dtype {values.dtype} does not parse") from None
        if spec.name in drift_tested and not values.notna().any():
            raise _problem(
                source,
                spec.name,
                "no value in the reference (every row missing): drift cannot be tested against it; set "
                "`monitor: false` on it in model.yaml (validated and served, not watched), or fill the reference",
            )
        if spec.kind is Kind.CATEGORICAL and spec.monitored:
            distinct = int(values.nunique(dropna=True))
            if distinct > MAX_DRIFT_CATEGORIES:
                raise _problem(
                    source,
                    spec.name,
                    f"{distinct} distinct categories; drift is tested over at most {MAX_DRIFT_CATEGORIES} (no window "
                    "tells drift from noise over more, and calibrating them takes very long): map it to fewer "
                    "categories, or set `monitor: false` on it in model.yaml (validated and served, not watched)",
                )
        if spec.kind is Kind.CATEGORICAL and spec.python_type is str:
            long = sorted(t for t in _texts(values) if len(t) > MAX_CATEGORY_LENGTH)
            if long:
                raise _problem(
                    source,
                    spec.name,
                    f"{len(long)} categor{'y' if len(long) == 1 else 'ies'} longer than {MAX_CATEGORY_LENGTH} "
                    f"characters ({long[0][:40]!r}..., {len(long[0])}): a request cannot carry them; map them to "
                    "shorter ones in the reference and the model",
                )
        if spec.values is not None and spec.kind is Kind.CATEGORICAL:
            unknown = sorted(_texts(values) - {category_key(v) for v in spec.values})
            if unknown:
                raise _problem(source, spec.name, f"value(s) {unknown[:5]} not among the described values")
    for column in (description.target_column, description.prediction_column):
        values = frame[column]
        if description.is_classification:
            unknown = sorted(_texts(values) - set(description.class_keys))
            if unknown:
                raise _problem(
                    source, column, f"value(s) {unknown[:5]} not among the classes {list(description.class_keys)}"
                )
        elif not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            raise _problem(source, column, f"a regression {column} must be numeric, got dtype {values.dtype}")
    for column in description.probability_columns.values():
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().all() or ((values < 0) | (values > 1)).any():
            raise _problem(source, column, "class probabilities must be numbers within [0, 1]")
