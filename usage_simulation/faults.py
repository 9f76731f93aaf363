"""Faults: column operations any model's rows can take, declared in a scenario phase's `faults:` list.

Each fault is a mapping with an `op`, the `column` it changes (not for the label ops), and options:

    - {op: scale, column: distance, factor: 1.8}        # numerical: x * factor
    - {op: shift, column: hours_per_week, by: -10}           # numerical: x + by
    - {op: variance, column: husband_income, factor: 3}      # numerical: spread around the reference mean
    - {op: select, column: hours_per_week, above: 40}        # rows replaced by source rows (with their own
                                                             # labels) where the column is above / below:
                                                             # pure covariate shift, P(label | inputs) kept
    - {op: mix, column: region, share: 0.6, to: least_frequent, top: 1}
                                                             # categorical: move rows to the K most/least
                                                             # frequent values the reference knows
    - {op: unseen, column: zone, share: 0.5}         # categorical: values the reference never had
                                                             # (`values: [...]` names them; else invented)
    - {op: missing, column: passengers, share: 0.7}     # the value goes missing (null)
    - {op: drop, column: distance}                      # the request body loses the field
    - {op: rename, column: distance, to: distance_km}    # the body sends it under another name
    - {op: retype, column: zone, to: str}            # the body sends it as str / int / float
    - {op: scale_label, factor: 1.6}                         # regression concept drift: label * factor
    - {op: shift_label, by: 5}                               # regression concept drift: label + by
    - {op: flip_labels, share: 0.3, to: "yes"}               # classification concept drift: a share of
                                                             # labels become another class (`to`, else any)

Every fault takes `share` (default 1: the share of rows it touches) and `segment` (confine it to rows of
one segment of the description's segment rule, e.g. `segment: Manhattan`). Faults apply in order, to the
rows and their labels before they become request bodies; drop, rename and retype change the bodies.
Numerical results are clipped to the feature's described bounds (and rounded for integers), so a shift
stays a drift the validator accepts rather than a schema violation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitoring_core.description import Kind, ModelDescription, category_key

NUMERICAL_OPS = frozenset({"scale", "shift", "variance"})
ROW_OPS = frozenset({"select"})
CATEGORICAL_OPS = frozenset({"mix", "unseen"})
BODY_OPS = frozenset({"drop", "rename", "retype"})
LABEL_OPS = frozenset({"scale_label", "shift_label", "flip_labels"})
OPS = NUMERICAL_OPS | ROW_OPS | CATEGORICAL_OPS | BODY_OPS | LABEL_OPS | {"missing"}
MIX_TARGETS = ("most_frequent", "least_frequent")
RETYPES = {"str": str, "int": lambda v: int(float(v)), "float": float}
_OPTIONS: dict[str, set[str]] = {
    "scale": {"factor"},
    "shift": {"by"},
    "variance": {"factor"},
    "select": {"above", "below"},
    "mix": {"to", "top"},
    "unseen": {"values"},
    "missing": set(),
    "drop": set(),
    "rename": {"to"},
    "retype": {"to"},
    "scale_label": {"factor"},
    "shift_label": {"by"},
    "flip_labels": {"to"},
}
_REQUIRED = {"scale": {"factor"}, "shift": {"by"}, "variance": {"factor"}, "scale_label": {"factor"}}
_REQUIRED |= {"shift_label": {"by"}, "rename": {"to"}, "retype": {"to"}}


class FaultError(ValueError):
    """A fault that cannot apply to a model's rows, with the reason."""


@dataclass(frozen=True)
class Fault:
    """One column operation, with the share of rows it touches and an optional segment it is confined to."""

    op: str
    column: str | None = None
    share: float = 1.0
    segment: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: Any, where: str) -> Fault:
        """Build a fault from its YAML mapping (column names are checked against a model by `check`)."""
        if not isinstance(spec, dict):
            raise FaultError(f"{where}: expected a mapping with an `op`, got {type(spec).__name__}")
        op = spec.get("op")
        if op not in OPS:
            raise FaultError(f"{where}: op must be one of {sorted(OPS)}, got {op!r}")
        allowed = {"op", "share", "segment", *_OPTIONS[op]} | (set() if op in LABEL_OPS else {"column"})
        unknown = set(spec) - allowed
        if unknown:
            raise FaultError(f"{where}: unknown key(s) {sorted(unknown)} for op {op}; allowed: {sorted(allowed)}")
        missing = _REQUIRED.get(op, set()) - set(spec) | ({"column"} - set(spec) if op not in LABEL_OPS else set())
        if missing:
            raise FaultError(f"{where}: op {op} needs {sorted(missing)}")
        share = spec.get("share", 1.0)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            raise FaultError(f"{where}: share must be a number in (0, 1]")
        options = {k: v for k, v in spec.items() if k in _OPTIONS[op]}
        for key in ("factor", "by"):
            if key in options and (isinstance(options[key], bool) or not isinstance(options[key], int | float)):
                raise FaultError(f"{where}: {key} must be a number")
        if op == "mix":
            options.setdefault("to", "most_frequent")
            options.setdefault("top", 1)
            if options["to"] not in MIX_TARGETS:
                raise FaultError(f"{where}: mix's `to` must be one of {MIX_TARGETS}")
            if not isinstance(options["top"], int) or isinstance(options["top"], bool) or options["top"] < 1:
                raise FaultError(f"{where}: mix's `top` must be a whole number >= 1")
        if op == "select":
            bounds = [options.get(k) for k in ("above", "below") if k in options]
            if not bounds or any(isinstance(b, bool) or not isinstance(b, int | float) for b in bounds):
                raise FaultError(f"{where}: select needs a number `above` and/or `below`")
        if op == "retype" and options["to"] not in RETYPES:
            raise FaultError(f"{where}: retype's `to` must be one of {sorted(RETYPES)}")
        if op == "unseen" and "values" in options:
            if not isinstance(options["values"], list) or not options["values"]:
                raise FaultError(f"{where}: unseen's `values` must be a non-empty list")
            options["values"] = tuple(options["values"])
        segment = spec.get("segment")
        return cls(
            op=str(op),
            column=None if spec.get("column") is None else str(spec["column"]),
            share=float(share),
            segment=None if segment is None else category_key(segment),
            options=options,
        )

    def __hash__(self) -> int:
        return hash((self.op, self.column, self.share, self.segment, tuple(sorted(map(str, self.options.items())))))

    @property
    def changes_body(self) -> bool:
        """Whether the fault changes the request body (a field dropped, renamed or retyped) rather than values."""
        return self.op in BODY_OPS

    def describe(self) -> str:
        """Return a one-line account of the fault, for messages."""
        parts = [self.op, *([self.column] if self.column else []), *(f"{k}={v}" for k, v in self.options.items())]
        if self.share < 1:
            parts.append(f"share={self.share:g}")
        if self.segment is not None:
            parts.append(f"segment={self.segment}")
        return " ".join(parts)

    def check(self, description: ModelDescription) -> None:
        """Raise FaultError when the fault cannot apply to `description`'s rows."""
        where = f"fault `{self.describe()}`"
        if self.op in LABEL_OPS:
            if (self.op == "flip_labels") != description.is_classification:
                wanted = "flip_labels" if description.is_classification else "scale_label or shift_label"
                raise FaultError(f"{where}: a {description.task.value} model's labels take {wanted}")
            to = self.options.get("to")
            if to is not None and category_key(to) not in description.class_keys:
                raise FaultError(f"{where}: {to!r} is not a class of {list(description.class_keys)}")
        else:
            spec = description.fields_by_name.get(self.column or "")
            if spec is None:
                raise FaultError(f"{where}: {self.column!r} is not a feature of {description.name}")
            if self.op in NUMERICAL_OPS | ROW_OPS and spec.kind is not Kind.NUMERICAL:
                raise FaultError(f"{where}: {self.op} needs a numerical feature; {spec.name} is {spec.kind.value}")
            if self.op in CATEGORICAL_OPS and spec.kind is not Kind.CATEGORICAL:
                raise FaultError(f"{where}: {self.op} needs a categorical feature; {spec.name} is {spec.kind.value}")
            if self.op == "rename" and str(self.options["to"]) in description.feature_names:
                raise FaultError(f"{where}: {self.options['to']!r} is already a feature's name")
        if self.segment is not None and description.segment is None:
            raise FaultError(f"{where}: {description.name} describes no segments")
        names = segment_names(description)
        if self.segment is not None and names is not None and self.segment not in names:
            raise FaultError(f"{where}: no segment {self.segment!r} in {description.name}; known: {sorted(names)}")


def segment_names(description: ModelDescription) -> set[str] | None:
    """Return the segment names the description's rule can give (None when a column's values are used as they are)."""
    rule = description.segment
    return None if rule is None else rule.names()


@dataclass(frozen=True)
class Reference:
    """What faults need to know of the reference: each column's values by frequency, each numeric mean, its rows."""

    description: ModelDescription
    frequencies: dict[str, pd.Series]
    means: dict[str, float]
    rows: pd.DataFrame | None = None  # the rows the simulation draws from (`select` draws among them)

    @classmethod
    def of(cls, description: ModelDescription, frame: pd.DataFrame) -> Reference:
        """Summarise `frame` (the rows the simulation draws from) for the faults."""
        frequencies, means = {}, {}
        for spec in description.features:
            if spec.name not in frame:
                continue
            if spec.kind is Kind.CATEGORICAL:
                counts = frame[spec.name].dropna().value_counts()
                # Most frequent first; ties in the values' text order, so a seed gives the same choice anywhere.
                order = sorted(counts.index, key=lambda v: (-counts[v], category_key(v)))
                frequencies[spec.name] = counts.loc[order]
            elif spec.kind is Kind.NUMERICAL:
                means[spec.name] = float(pd.to_numeric(frame[spec.name], errors="coerce").mean())
        return cls(description, frequencies, means, frame)

    def rows_where(self, column: str, above: float | None, below: float | None) -> pd.DataFrame:
        """Return the source rows whose `column` lies above `above` and below `below` (FaultError when none)."""
        if self.rows is None:
            raise FaultError("select needs the rows the simulation draws from")
        values = pd.to_numeric(self.rows[column], errors="coerce")
        keep = values.notna()
        if above is not None:
            keep &= values > above
        if below is not None:
            keep &= values < below
        if not keep.any():
            raise FaultError(f"select {column}: no source row lies in ({above}, {below})")
        return self.rows[keep.to_numpy()]

    def known_values(self, column: str, most: bool, top: int) -> list[Any]:
        """Return the `top` most (or least) frequent values the reference holds for a categorical column."""
        values = list(self.frequencies[column].index)
        return values[:top] if most else values[::-1][:top]

    def unseen_values(self, column: str) -> list[Any]:
        """Return values of a categorical column neither the reference nor the description knows (a few)."""
        spec = self.description.feature(column)
        known = {category_key(v) for v in self.frequencies.get(column, pd.Series(dtype=object)).index}
        known |= {category_key(v) for v in spec.values or ()}
        if spec.python_type is int:
            low = int(spec.minimum) if spec.minimum is not None else 0
            high = int(spec.maximum) if spec.maximum is not None else max((int(k) for k in known), default=0) + 10
            fresh = [v for v in range(low, high + 1) if str(v) not in known]
            if not fresh:
                raise FaultError(f"unseen {column}: every value in [{low}, {high}] is known; list `values`")
            return fresh
        return [f"unseen_{column}_{i}" for i in range(1, 4)]


def _selected(rows: pd.DataFrame, fault: Fault, description: ModelDescription, rng: np.random.Generator) -> np.ndarray:
    mask = rng.random(len(rows)) < fault.share
    if fault.segment is not None:
        mask &= (description.segment_of(rows).map(category_key) == fault.segment).to_numpy()
    return mask


def _bounded(values: pd.Series, description: ModelDescription, column: str) -> pd.Series:
    spec = description.feature(column)
    out = values.clip(lower=spec.minimum, upper=spec.maximum)
    return out.round() if spec.python_type is int else out


def _pick(values: list[Any], n: int, rng: np.random.Generator) -> list[Any]:
    return [values[i] for i in rng.integers(0, len(values), size=n)]


def _other_class(labels: pd.Series, classes: tuple[str, ...], to: Any, rng: np.random.Generator) -> list[str]:
    if to is not None:
        return [category_key(to)] * len(labels)
    out = []
    for label in labels.map(category_key):
        others = [c for c in classes if c != label] or list(classes)
        out.append(others[int(rng.integers(0, len(others)))])
    return out


def apply_faults(
    rows: pd.DataFrame, faults: tuple[Fault, ...], reference: Reference, rng: np.random.Generator
) -> tuple[pd.DataFrame, list[tuple[Fault, np.ndarray]]]:
    """Apply the value faults to a copy of `rows` (features and target); return it and the body faults' row masks."""
    description = reference.description
    out = rows.copy()
    body: list[tuple[Fault, np.ndarray]] = []
    target = description.target_column
    for fault in faults:
        mask = _selected(out, fault, description, rng)
        if fault.changes_body:
            body.append((fault, mask))
            continue
        if not mask.any():
            continue
        column, opts = fault.column, fault.options
        if fault.op == "select":
            # Covariate shift with true labels: rows of the region, labels and all, replace the selected rows.
            pool = reference.rows_where(column, opts.get("above"), opts.get("below"))
            chosen = pool.iloc[rng.integers(0, len(pool), size=int(mask.sum()))][list(out.columns)]
            out = pd.concat([out[~mask], chosen.set_axis(out.index[mask])]).sort_index(kind="stable")
        elif fault.op in NUMERICAL_OPS:
            values = pd.to_numeric(out[column], errors="coerce").astype(float)
            if fault.op == "scale":
                changed = values * opts["factor"]
            elif fault.op == "shift":
                changed = values + opts["by"]
            else:
                mean = reference.means.get(column, float(values.mean()))
                changed = mean + (values - mean) * opts["factor"]
            out[column] = values.where(~mask, _bounded(changed, description, column))
        elif fault.op == "mix":
            targets = reference.known_values(column, opts["to"] == "most_frequent", opts["top"])
            out[column] = out[column].astype(object)
            out.loc[mask, column] = _pick(targets, int(mask.sum()), rng)
        elif fault.op == "unseen":
            values = list(opts.get("values") or reference.unseen_values(column))
            out[column] = out[column].astype(object)
            out.loc[mask, column] = _pick(values, int(mask.sum()), rng)
        elif fault.op == "missing":
            out[column] = out[column].astype(object).where(~mask, None)
        elif fault.op == "flip_labels":
            out[target] = out[target].map(category_key).astype(object)
            out.loc[mask, target] = _other_class(out.loc[mask, target], description.class_keys, opts.get("to"), rng)
        else:
            labels = pd.to_numeric(out[target], errors="coerce").astype(float)
            changed = labels * opts["factor"] if fault.op == "scale_label" else labels + opts["by"]
            out[target] = labels.where(~mask, changed.clip(upper=description.target.maximum))
    return out, body


def apply_body_fault(body: dict, fault: Fault) -> dict:
    """Apply a drop, rename or retype fault to one request body."""
    column = fault.column
    if fault.op == "drop":
        return {k: v for k, v in body.items() if k != column}
    if fault.op == "rename":
        return {(fault.options["to"] if k == column else k): v for k, v in body.items()}
    out = dict(body)
    if out.get(column) is not None:
        out[column] = RETYPES[fault.options["to"]](out[column])
    return out
