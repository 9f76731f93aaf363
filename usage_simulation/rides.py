"""Rides to send: from the synthetic generator or a TLC parquet file, with a phase's faults applied."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ride_duration.schema import DATETIME_FIELD, FIELD_NAMES, FIELDS_BY_NAME, TARGET
from ride_duration.synthetic import RARE_ZONES, DriftParams, generate_trips
from ride_duration.tlc import load_tlc
from ride_duration.zones import borough_of
from usage_simulation.scenario import Phase, SchemaChange

CHUNK_ROWS = 2_000


def synthetic_rides(n: int, seed: int, drift: DriftParams) -> pd.DataFrame:
    """Return `n` generated rides (API fields plus `duration`) with `drift` injected."""
    return generate_trips(n, seed=seed, drift=drift)[[*FIELD_NAMES, TARGET]]


def drift_real_rides(frame: pd.DataFrame, drift: DriftParams, seed: int) -> pd.DataFrame:
    """Inject `drift` into real rides, as close as the data allows to what the generator does."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    # Longer trips take proportionally longer; the target follows the feature.
    out["trip_distance"] = (out["trip_distance"] * drift.distance_scale).clip(upper=200.0).round(2)
    out[TARGET] = out[TARGET] * drift.distance_scale
    if drift.new_zone_share:
        moved = rng.random(len(out)) < drift.new_zone_share
        out.loc[moved, "PULocationID"] = rng.choice(np.array(RARE_ZONES), size=int(moved.sum()))
    if drift.missing_share:
        out.loc[rng.random(len(out)) < drift.missing_share, "passenger_count"] = np.nan
    out[TARGET] = out[TARGET] * drift.congestion
    if drift.borough is not None:
        in_borough = out["PULocationID"].map(borough_of) == drift.borough
        out.loc[in_borough, TARGET] = out.loc[in_borough, TARGET] * drift.borough_congestion
    return out


class RideSource:
    """Endless rides for each phase, in chunks: synthetic by default, or resampled from a TLC file."""

    def __init__(self, seed: int = 42, data_path: Path | None = None) -> None:
        self.seed = seed
        self._real = load_tlc(data_path) if data_path is not None else None
        if self._real is not None and self._real.empty:
            raise ValueError(f"{data_path}: no usable rides after cleaning")

    def chunks(self, phase_index: int, phase: Phase) -> Iterator[pd.DataFrame]:
        """Yield chunks of rides for one phase forever, each reproducible from the seed."""
        for chunk in range(10**9):
            seed = self.seed + 1_000 * phase_index + chunk
            if self._real is None:
                yield synthetic_rides(CHUNK_ROWS, seed, phase.drift)
            else:
                sample = self._real.sample(min(CHUNK_ROWS, len(self._real)), random_state=seed)
                yield drift_real_rides(sample.reset_index(drop=True), phase.drift, seed)


def _json_value(name: str, value: object) -> object:
    # NaN and NaT become null; numpy scalars become plain JSON numbers of the schema's type.
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if name == DATETIME_FIELD:
        return pd.Timestamp(value).isoformat()
    spec = FIELDS_BY_NAME[name]
    return int(value) if spec.dtype is int else float(value)


def to_payloads(frame: pd.DataFrame) -> list[tuple[dict, float]]:
    """Turn rides into (request body with only the API fields, ground-truth minutes) pairs."""
    records = frame[[*FIELD_NAMES, TARGET]].to_dict("records")
    return [({name: _json_value(name, r[name]) for name in FIELD_NAMES}, float(r[TARGET])) for r in records]


def apply_schema_change(body: dict, change: SchemaChange, rng: np.random.Generator) -> dict:
    """Apply an upstream schema change to one request body (to `change.share` of the bodies)."""
    if change.share < 1 and rng.random() >= change.share:
        return body
    out = {k: v for k, v in body.items() if k not in change.drop}
    for field, kind in change.retype.items():
        if out.get(field) is not None:
            out[field] = {"str": str, "int": lambda v: int(float(v)), "float": float}[kind](out[field])
    return {change.rename.get(k, k): v for k, v in out.items()}


class PhaseFeed:
    """Hands out the next request body and its ground truth for whichever phase is running."""

    def __init__(self, source: RideSource, seed: int = 42) -> None:
        self._source = source
        self._iters: dict[int, Iterator[pd.DataFrame]] = {}
        self._buffers: dict[int, list[tuple[dict, float]]] = {}
        self._rng = np.random.default_rng(seed)

    def next(self, phase_index: int, phase: Phase) -> tuple[dict, float]:
        """Return the next (body, duration) for the phase, with its schema change applied."""
        buffer = self._buffers.setdefault(phase_index, [])
        if not buffer:
            chunks = self._iters.setdefault(phase_index, self._source.chunks(phase_index, phase))
            buffer.extend(reversed(to_payloads(next(chunks))))
        body, duration = buffer.pop()
        if phase.schema_change is not None:
            body = apply_schema_change(body, phase.schema_change, self._rng)
        return body, duration

    def prime(self, phases: list[tuple[int, Phase]]) -> None:
        """Generate the first chunk of every phase up front, so no phase starts with a stall."""
        for index, phase in phases:
            if not phase.outage and not self._buffers.get(index):
                chunks = self._iters.setdefault(index, self._source.chunks(index, phase))
                self._buffers[index] = list(reversed(to_payloads(next(chunks))))
