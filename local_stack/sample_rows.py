"""A well-formed request row for a model folder, taken from its own reference (for load and fault harnesses).

The harnesses that hammer a running prediction service (slow clients, faults under load) need one valid
body; they take it from the served model's reference instead of naming any model's features.
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from monitoring_core.paths import DEFAULT_MODEL_DIR
from monitoring_core.reference import read_reference


def _json(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, datetime) or hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def described_row(description: Any) -> dict[str, Any]:
    """Return a valid row made from the description alone: numbers inside their bounds, a known category."""
    from monitoring_core.description import Kind

    row: dict[str, Any] = {}
    for spec in description.features:
        if spec.kind is Kind.DATETIME:
            row[spec.name] = "2021-01-05T08:30:00"
        elif spec.python_type is str:
            row[spec.name] = str(spec.values[0]) if spec.values else "a"
        elif spec.python_type is bool:
            row[spec.name] = True
        else:
            low = spec.minimum if spec.minimum is not None else 0.0
            high = spec.maximum if spec.maximum is not None else low + 2.0
            middle = (low + high) / 2
            row[spec.name] = round(middle) if spec.python_type is int else middle
    return row


@cache
def sample_row(model_dir: Path = DEFAULT_MODEL_DIR) -> dict[str, Any]:
    """Return the first reference row with every feature present, as the JSON body `/predict` takes.

    Without a reference yet (a fresh checkout before training), a row made from the description's bounds.
    """

    from monitoring_core.model_folder import load_model_folder

    folder = load_model_folder(model_dir)
    if not folder.reference_path.is_file():
        return described_row(folder.description)
    names = list(folder.description.feature_names)
    reference = read_reference(folder.reference_path, columns=names)
    complete = reference.dropna()
    record = (complete if len(complete) else reference).iloc[0].to_dict()
    row = {}
    for name in names:
        value = _json(record[name])
        if isinstance(value, float) and math.isnan(value):
            continue
        spec = folder.description.feature(name)
        row[name] = int(value) if spec.python_type is int and isinstance(value, float) else value
    return row
