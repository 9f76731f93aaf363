"""`python -m monitoring_core.draft REFERENCE.parquet --name N --task T --target COL`: print a first model.yaml.

The draft is inferred from the reference's columns, for a person to read and edit before use:
numbers become numerical features with the observed range widened (the bounds requests are
refused outside of), strings, booleans and integers with few distinct values categorical, datetimes
datetime; a regression target only gets `minimum: 0` when the reference never holds a negative one.
A classifier's classes come from the target's values, and its class-probability columns
are found by name: one pattern around every class (`proba_<class>`, `p_<class>`, `<class>_score`...) whose
columns sum to 1 per row, else `prob_<class>`, `proba_<class>`, `probability_<class>`, `p_<class>` or the class.
Key reference: docs/model_description.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from monitoring_core.description import NAME_PATTERN, RESERVED_NAMES, Task, category_key
from monitoring_core.reference import read_reference
from monitoring_core.reference_check import MAX_DRIFT_CATEGORIES

# An integer column with at most this many distinct values is taken for a category (zone ids, codes).
MAX_INT_CATEGORIES = 20
PROBABILITY_PREFIXES = ("prob_", "proba_", "probability_", "p_")


def _number(value: float) -> float | int:
    rounded = float(f"{value:.6g}")
    return int(rounded) if rounded.is_integer() else rounded


def _native(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _widened(values: pd.Series) -> dict[str, float | int]:
    """Return minimum/maximum: the observed range widened by its own span each way (not below 0 if never negative)."""
    low, high = float(values.min()), float(values.max())
    span = (high - low) or abs(high) or 1.0
    minimum = low - span
    if low >= 0:
        minimum = max(minimum, 0.0)
    return {"minimum": _number(minimum), "maximum": _number(high + span)}


def _feature(name: str, values: pd.Series) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name}
    if isinstance(values.dtype, pd.CategoricalDtype):  # pandas' category dtype: typed by its categories (1, 2, 3)
        values = pd.Series(np.asarray(values), index=values.index).infer_objects()
    dtype = values.dtype
    present = values.dropna()
    if pd.api.types.is_datetime64_any_dtype(dtype):
        spec["kind"] = "datetime"
        zone = getattr(dtype, "tz", None)
        if zone is not None:  # the model saw this zone's clock: requests' offsets are converted to it
            spec["timezone"] = str(zone)
    elif pd.api.types.is_bool_dtype(dtype):
        spec.update(kind="categorical", type="bool")
    elif pd.api.types.is_integer_dtype(dtype) or (
        pd.api.types.is_float_dtype(dtype) and len(present) and (present % 1 == 0).all()
    ):
        if present.nunique() <= MAX_INT_CATEGORIES:
            spec.update(kind="categorical", type="int")
        else:
            spec.update(kind="numerical", type="int" if pd.api.types.is_integer_dtype(dtype) else "float")
            spec.update(_widened(present))
    elif pd.api.types.is_numeric_dtype(dtype):
        spec.update(kind="numerical", type="float", **(_widened(present) if len(present) else {}))
    else:
        spec.update(kind="categorical", type="str")
    if spec["kind"] == "categorical" and present.nunique() > MAX_DRIFT_CATEGORIES:
        spec["monitor"] = False  # prepare refuses drift over so many categories; the person decides (comment)
    if present.empty:
        spec["monitor"] = False  # no reference value to test drift against (prepare refuses it); said in a comment
    if values.isna().any():
        spec["nullable"] = True
    return spec


def probability_columns(frame: pd.DataFrame, classes: list[Any]) -> dict[str, str]:
    """Return {class text: column} of the columns holding each class's probability, found by name."""
    keys = [category_key(cls) for cls in classes]
    # A class as its key ("true") and as Python writes it (f"proba_{cls}" over classes_: "proba_True").
    spellings = {category_key(cls): list(dict.fromkeys([category_key(cls), str(cls)])) for cls in classes}
    shares = [c for c in frame.columns if isinstance(c, str) and _is_share(frame[c])]
    # One naming pattern around every class (`p_barolo`, `barolo_score`, `P(barolo)`) whose columns sum to 1 per
    # row: whatever the pattern, those are the probabilities. Known patterns are tried first.
    patterns: dict[str, dict[str, str]] = {}
    for column in shares:
        for key in keys:
            for text in spellings[key]:
                if text and text in column and column != text:
                    patterns.setdefault(column.replace(text, "{}", 1), {})[key] = column
    known = [p + "{}" for p in PROBABILITY_PREFIXES]
    for pattern in sorted(patterns, key=lambda p: (p not in known, known.index(p) if p in known else 0, p)):
        found = patterns[pattern]
        if len(found) == len(keys) and len(set(found.values())) == len(keys) and _sums_to_one(frame, found.values()):
            return found
    # Otherwise class by class, by the known names (a binary model may give the positive class's column alone).
    found = {}
    for key in keys:
        names = [p + text for text in spellings[key] for p in (*PROBABILITY_PREFIXES, "")]
        if column := next((name for name in names if name in shares), None):
            found[key] = column
    return found


def _is_share(values: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return False
    present = values.dropna()
    return bool(len(present)) and bool(present.between(0, 1).all())


def _sums_to_one(frame: pd.DataFrame, columns: Any) -> bool:
    total = frame[list(columns)].dropna().sum(axis=1)
    return bool(len(total)) and bool(((total - 1).abs() <= 1e-3).all())


def draft(frame: pd.DataFrame, name: str, task: Task, target: str, prediction: str = "prediction") -> dict[str, Any]:
    """Return a first description of a model whose reference is `frame`."""
    for column in (target, prediction):
        if column not in frame.columns:
            raise ValueError(f"the reference has no column {column!r} (columns: {list(frame.columns)})")
    _check_target_fits_task(frame[target], target, task)
    description: dict[str, Any] = {"name": name, "task": task.value}
    used = {target, prediction}
    if task is Task.CLASSIFICATION:
        classes = sorted({_native(v) for v in frame[target].dropna()}, key=_class_order)
        description["classes"] = classes
        probabilities = probability_columns(frame, classes)
        used |= set(probabilities.values())
    description["target"] = {"name": target}
    if task is Task.REGRESSION and len(frame[target].dropna()) and frame[target].min() >= 0:
        # Only the sign: a label is ground truth, not an input to guard, and a label refused for lying outside
        # a range guessed from the reference is lost (the features' ranges still guard requests).
        description["target"]["minimum"] = 0
    description["prediction"] = {"name": prediction}
    if task is Task.CLASSIFICATION and probabilities:
        description["prediction"]["probabilities"] = probabilities
    description["features"] = [
        _feature(column, frame[column]) for column in frame.columns if column not in used and _usable_name(column)
    ]
    return description


def _check_target_fits_task(values: pd.Series, target: str, task: Task) -> None:
    """Raise ValueError naming the column when the task cannot be right for its values (the other task is meant)."""
    present = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)
    if task is Task.REGRESSION and len(present) and not numeric:
        example = present.iloc[0]
        raise ValueError(
            f"the target {target!r} is not a number (e.g. {example!r}): a regression target is; "
            "for classes use --task classification"
        )
    if task is Task.CLASSIFICATION and pd.api.types.is_float_dtype(values.dtype) and (present % 1 != 0).any():
        fractional = present[present % 1 != 0].iloc[0]
        raise ValueError(
            f"the target {target!r} holds fractional numbers ({present.nunique()} distinct values, e.g. "
            f"{_number(fractional)}), not classes: for a number to predict use --task regression"
        )


def _usable_name(column: Any) -> bool:
    return bool(re.fullmatch(NAME_PATTERN, str(column))) and column not in RESERVED_NAMES


def _class_order(value: Any) -> tuple[int, Any]:
    # Numbers in numeric order (2 before 10, as a model's classes_ are), anything else by its text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, category_key(value))


def main(argv: list[str] | None = None) -> int:
    """Print the draft model.yaml of a reference file."""
    parser = argparse.ArgumentParser(prog="python -m monitoring_core.draft", description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="reference parquet: features, target, prediction (probabilities)")
    parser.add_argument("--name", required=True, help="the model's name (URLs, metric labels)")
    parser.add_argument("--task", required=True, choices=[t.value for t in Task], help="what the model predicts")
    parser.add_argument("--target", required=True, help="the ground-truth column")
    parser.add_argument("--prediction", default="prediction", help="the prediction column (default: prediction)")
    args = parser.parse_args(argv)
    try:
        frame = read_reference(args.reference)
        description = draft(frame, args.name, Task(args.task), args.target, args.prediction)
    except (OSError, ValueError) as exc:
        print(f"draft: {args.reference}: {exc}", file=sys.stderr)
        return 2
    skipped = [c for c in frame.columns if not re.fullmatch(NAME_PATTERN, str(c))]
    reserved = [c for c in frame.columns if c in RESERVED_NAMES and c not in (args.target, args.prediction)]
    print(f"# First draft from {args.reference.name} ({len(frame)} rows): check every kind and bound, then add")
    print("# `alerts` (e.g. rmse: {max: ...} or accuracy: {min: ...}) and `segments`; docs/model_description.md.")
    if skipped:
        print(f"# Columns left out (names a request field cannot have): {skipped}")
    if reserved:
        print(f"# Columns left out (names the stack reserves: request_id, timestamp, ...): {reserved}")
    unmonitored = [f["name"] for f in description["features"] if f.get("monitor") is False]
    empty = [name for name in unmonitored if frame[name].isna().all()]
    crowded = [name for name in unmonitored if name not in empty]
    if crowded:
        print(
            f"# {crowded}: more than {MAX_DRIFT_CATEGORIES} categories, so `monitor: false` (not drift-tested nor "
            "watched); map to fewer categories to watch them."
        )
    if empty:
        print(f"# {empty}: no value in the reference, so `monitor: false` (served, not drift-tested).")
    if skipped or reserved:
        print("# A model that reads a column left out cannot be served: rename it in the reference and the model.")
    print(yaml.safe_dump(description, sort_keys=False, allow_unicode=True), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
