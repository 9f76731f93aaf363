"""Rows to send: drawn from a model's reference (or a parquet file of the same columns), a phase's faults applied.

The model's description says which columns are features (sent to `/predict` under their names) and which
is the target (sent later to `/feedback` under its name). Rows are resampled from the source with
replacement, so a clean phase looks like the reference the monitors compare against; when the description
names a `timestamp` column, rows are replayed in its order instead (each chunk the next block of time,
wrapping around at the end). The description's `id` column is not sent: the simulator's request ids
(`sim-<run>-<n>`) stay unique across runs that replay the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring_core.description import Kind, ModelDescription, category_key
from monitoring_core.model_folder import ModelFolder, load_model_folder
from monitoring_core.reference import read_reference
from usage_simulation.faults import Reference, apply_body_fault, apply_faults
from usage_simulation.scenario import Phase

CHUNK_ROWS = 2_000


class SourceError(ValueError):
    """The rows cannot be simulated from (a missing file or column), with the reason."""


def read_rows(description: ModelDescription, path: Path) -> pd.DataFrame:
    """Return the described features and the target of a parquet file; a missing optional feature is null."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file (train the model first, or give --data)")
    frame = read_reference(path)
    missing = [f.name for f in description.features if f.required and f.name not in frame]
    if description.target_column not in frame:
        missing.append(description.target_column)
    if missing:
        raise SourceError(f"{path}: missing column(s) {missing} of model {description.name}")
    for spec in description.features:
        if spec.name not in frame:
            frame[spec.name] = None
    order = [description.timestamp] if description.timestamp and description.timestamp in frame else []
    columns = [*description.feature_names, description.target_column, *order]
    frame = frame[columns].dropna(subset=[description.target_column])
    if frame.empty:
        raise SourceError(f"{path}: no rows with a {description.target_column}")
    return frame.reset_index(drop=True)


def _json_value(description: ModelDescription, name: str, value: Any) -> Any:
    # NaN and NaT become null; numpy scalars become plain JSON values of the described type.
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    spec = description.fields_by_name.get(name)
    if spec is None:
        return value
    if spec.kind is Kind.DATETIME:
        return pd.Timestamp(value).isoformat() if not isinstance(value, str) else value
    kind = spec.python_type
    if kind is str:
        # A categorical column read as numbers (an int-coded category described as text) is sent as text.
        return value if isinstance(value, str) else category_key(value)
    if kind is bool:
        return bool(value)
    if isinstance(value, str):  # an invented unseen value of a numeric category: sent as it is
        return value
    return int(value) if kind is int else float(value)


def label_value(description: ModelDescription, value: Any) -> Any:
    """Return a label as `/feedback` takes it: a class as text, or a number."""
    if description.is_classification:
        return category_key(value)
    return round(float(value), 4)


def to_payloads(description: ModelDescription, frame: pd.DataFrame) -> list[tuple[dict, Any]]:
    """Turn rows into (request body with only the described features, label) pairs."""
    names = description.feature_names
    records = frame[[*names, description.target_column]].to_dict("records")
    return [
        (
            {name: _json_value(description, name, r[name]) for name in names},
            label_value(description, r[description.target_column]),
        )
        for r in records
    ]


class RowSource:
    """Endless rows for each phase, in chunks resampled from the source frame, with the phase's faults."""

    def __init__(self, description: ModelDescription, frame: pd.DataFrame, seed: int = 42) -> None:
        self.description = description
        self.timed = description.timestamp is not None and description.timestamp in frame
        self.frame = frame.sort_values(description.timestamp, kind="stable") if self.timed else frame
        self.frame = self.frame.reset_index(drop=True)
        self.seed = seed
        self.reference = Reference.of(description, frame)
        self._cursor = 0

    @classmethod
    def from_model_dir(cls, model_dir: Path, data: Path | None = None, seed: int = 42) -> RowSource:
        """Draw from a model folder's reference, or from `data` (a parquet file with the same columns)."""
        folder: ModelFolder = load_model_folder(model_dir)
        path = data if data is not None else folder.reference_path
        return cls(folder.description, read_rows(folder.description, Path(path)), seed)

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        """Return `n` rows: drawn with replacement (reproducibly from `seed`), or the next `n` in time order."""
        if self.timed:
            positions = (self._cursor + np.arange(n)) % len(self.frame)
            self._cursor = int(positions[-1] + 1) % len(self.frame)
            return self.frame.iloc[positions].reset_index(drop=True)
        rng = np.random.default_rng(seed)
        return self.frame.iloc[rng.integers(0, len(self.frame), size=n)].reset_index(drop=True)

    def payloads(self, phase: Phase, rows: pd.DataFrame, seed: int) -> list[tuple[dict, Any]]:
        """Apply the phase's faults to `rows` and return (body, label) pairs."""
        rng = np.random.default_rng(seed)
        changed, body_faults = apply_faults(rows, phase.faults, self.reference, rng)
        pairs = to_payloads(self.description, changed)
        for fault, mask in body_faults:
            pairs = [(apply_body_fault(b, fault) if m else b, label) for (b, label), m in zip(pairs, mask, strict=True)]
        return pairs

    def chunks(self, phase_index: int, phase: Phase) -> Iterator[list[tuple[dict, Any]]]:
        """Yield chunks of (body, label) pairs for one phase forever, each reproducible from the seed."""
        for chunk in range(10**9):
            seed = self.seed + 1_000 * phase_index + chunk
            yield self.payloads(phase, self.sample(CHUNK_ROWS, seed), seed)


class PhaseFeed:
    """Hands out the next request body and its label for whichever phase is running."""

    def __init__(self, source: RowSource) -> None:
        self._source = source
        self._iters: dict[int, Iterator[list[tuple[dict, Any]]]] = {}
        self._buffers: dict[int, list[tuple[dict, Any]]] = {}

    @property
    def description(self) -> ModelDescription:
        """Return the description of the model the rows are for."""
        return self._source.description

    def _refill(self, phase_index: int, phase: Phase) -> None:
        chunks = self._iters.setdefault(phase_index, self._source.chunks(phase_index, phase))
        self._buffers[phase_index] = list(reversed(next(chunks)))

    def next(self, phase_index: int, phase: Phase) -> tuple[dict, Any]:
        """Return the next (body, label) of the phase."""
        if not self._buffers.get(phase_index):
            self._refill(phase_index, phase)
        return self._buffers[phase_index].pop()

    def prime(self, phases: list[tuple[int, Phase]]) -> None:
        """Prepare the first chunk of every phase up front, so no phase starts with a stall."""
        for index, phase in phases:
            if not phase.outage and not self._buffers.get(index):
                self._refill(index, phase)
