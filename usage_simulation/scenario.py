"""Scenarios: a named sequence of timed phases, each with injected faults and the signals they should raise.

A scenario is a YAML file. Generic ones (no column named) are built in (`usage_simulation/scenarios/`);
a model's own live beside it (`models/<name>/scenarios/*.yaml`) and are found by name for that model:

    name: covariate_shift
    description: Trips get longer from a point on.
    duration_seconds: 120            # run length when --duration / --rows are not given
    phases:
      - name: clean
        share: 1                     # relative length; or duration_seconds: 60
      - name: longer_trips
        share: 1
        faults:                      # column operations: see usage_simulation/faults.py
          - {op: scale, column: distance, factor: 1.8}
        expected_signals:
          - name: distance drift
            promql: max(evidently_feature_drift_detected{feature="distance"}) == 1
          - alert: FeatureDriftDetected

A phase may be `outage: true` (no traffic). `clean: true` marks a phase where no signal may fire (the default
for a phase without faults); `watch_signals` at the top level lists what counts as a false alarm there
(default: every expected signal of the scenario). `Scenario.check(description)` proves every fault fits a model.
`${model}` anywhere in the file stands for a regular expression matching the model's name (the built-ins narrow
their signals with `{model=~"${model}"}`: in a stack monitoring several models, another model's drift is not
this run's); loaded without a description it matches every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monitoring_core.description import ModelDescription
from usage_simulation.faults import Fault, FaultError

BUILTIN_DIR = Path(__file__).resolve().parent / "scenarios"
DEFAULT_DURATION_SECONDS = 120.0
SCENARIOS_DIR = "scenarios"  # a model folder's own scenarios
MODEL_PLACEHOLDER = "${model}"  # replaced by a regex of the simulated model's name when loaded for it


class ScenarioError(ValueError):
    """A scenario file that cannot be used, with the reason."""


def _check_keys(where: str, data: dict, allowed: set[str]) -> None:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - allowed
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


@dataclass(frozen=True)
class Signal:
    """Something that should show in Prometheus: on while `promql` returns any sample (as in an alert rule)."""

    name: str
    promql: str
    alert: str | None = None

    @classmethod
    def parse(cls, spec: Any, where: str) -> Signal:
        """Build a signal from `"AlertName"`, `"<promql>"`, `{alert: X[, state, labels]}` or `{promql: E[, name]}`."""
        if isinstance(spec, str):
            spec = {"alert": spec} if spec.isidentifier() and spec[:1].isupper() else {"promql": spec}
        _check_keys(where, spec, {"name", "promql", "alert", "state", "labels"})
        if ("alert" in spec) == ("promql" in spec):
            raise ScenarioError(f"{where}: give exactly one of `alert` or `promql`")
        if "alert" in spec:
            alert, state = str(spec["alert"]), spec.get("state", "firing")
            if state not in ("firing", "pending"):
                raise ScenarioError(f"{where}: state must be firing or pending, got {state!r}")
            # `pending` accepts an alert whose condition holds but whose `for:` has not elapsed yet.
            # `labels` narrows the alert to one of its label sets, e.g. {feature: distance}.
            labels = {str(k): str(v) for k, v in (spec.get("labels") or {}).items()}
            matchers = [f'alertname="{alert}"', *(f'{k}="{v}"' for k, v in sorted(labels.items()))]
            selector = ",".join(matchers + (['alertstate="firing"'] if state == "firing" else []))
            shown = alert + "".join(f" {k}={v}" for k, v in sorted(labels.items()))
            name = spec.get("name") or (shown if state == "firing" else f"{shown} (pending)")
            return cls(name=str(name), promql=f"ALERTS{{{selector}}}", alert=alert)
        promql = str(spec["promql"]).strip()
        if not promql:
            raise ScenarioError(f"{where}: empty promql")
        return cls(name=str(spec.get("name") or promql), promql=promql)


@dataclass(frozen=True)
class Phase:
    """One stretch of the run: its length, the faults injected and what should fire."""

    name: str
    share: float | None = 1.0
    duration_seconds: float | None = None
    faults: tuple[Fault, ...] = ()
    outage: bool = False
    clean: bool = True
    expected_signals: tuple[Signal, ...] = ()

    @classmethod
    def parse(cls, spec: Any, where: str) -> Phase:
        """Build a phase from its YAML mapping."""
        allowed = {
            "name",
            "share",
            "duration_seconds",
            "faults",
            "outage",
            "clean",
            "expected_signals",
            "description",
        }
        _check_keys(where, spec, allowed)
        name = str(spec.get("name") or where)
        where = f"{where} ({name})"
        if "share" in spec and "duration_seconds" in spec:
            raise ScenarioError(f"{where}: give share or duration_seconds, not both")
        duration = spec.get("duration_seconds")
        share = None if duration is not None else float(spec.get("share", 1.0))
        if (duration is not None and float(duration) <= 0) or (share is not None and share <= 0):
            raise ScenarioError(f"{where}: a phase's length must be > 0")
        fault_specs = spec.get("faults") or []
        if not isinstance(fault_specs, list):
            raise ScenarioError(f"{where}.faults: expected a list of faults")
        try:
            faults = tuple(Fault.parse(f, f"{where}.faults[{i}]") for i, f in enumerate(fault_specs))
        except FaultError as exc:
            raise ScenarioError(str(exc)) from None
        signals = tuple(
            Signal.parse(s, f"{where}.expected_signals[{i}]") for i, s in enumerate(spec.get("expected_signals") or ())
        )
        outage = bool(spec.get("outage", False))
        faulty = bool(faults) or outage or bool(signals)
        return cls(
            name=name,
            share=share,
            duration_seconds=None if duration is None else float(duration),
            faults=faults,
            outage=outage,
            clean=bool(spec.get("clean", not faulty)),
            expected_signals=signals,
        )


@dataclass(frozen=True)
class ScheduledPhase:
    """A phase placed on the run's clock: seconds from the start."""

    index: int
    phase: Phase
    start: float
    end: float


@dataclass(frozen=True)
class Scenario:
    """A named sequence of phases."""

    name: str
    description: str
    phases: tuple[Phase, ...]
    duration_seconds: float = DEFAULT_DURATION_SECONDS
    watch_signals: tuple[Signal, ...] = ()

    def signals_to_watch(self) -> tuple[Signal, ...]:
        """Return the signals whose firing in a clean phase is a false alarm."""
        if self.watch_signals:
            return self.watch_signals
        seen: dict[str, Signal] = {}
        for phase in self.phases:
            for signal in phase.expected_signals:
                seen.setdefault(signal.promql, signal)
        return tuple(seen.values())

    def check(self, description: ModelDescription) -> None:
        """Raise ScenarioError when a fault of the scenario cannot apply to `description`'s rows."""
        for phase in self.phases:
            for fault in phase.faults:
                try:
                    fault.check(description)
                except FaultError as exc:
                    raise ScenarioError(f"{self.name}.{phase.name}: {exc}") from None

    def natural_duration(self) -> float:
        """Return the run length when none is asked for: the sum of fixed phases, else the scenario's."""
        if all(p.duration_seconds is not None for p in self.phases):
            return sum(p.duration_seconds for p in self.phases)  # type: ignore[misc]
        return self.duration_seconds

    def schedule(self, total_seconds: float | None = None) -> list[ScheduledPhase]:
        """Place the phases on a run of `total_seconds`: fixed phases keep their length, shares split the rest."""
        total = self.natural_duration() if total_seconds is None else float(total_seconds)
        fixed = sum(p.duration_seconds or 0.0 for p in self.phases)
        shares = sum(p.share or 0.0 for p in self.phases)
        # When fixed phases do not fit (or only fixed phases exist), scale them all to the run length.
        scale = total / fixed if fixed and (fixed > total or not shares) else 1.0
        rest = max(total - fixed * scale, 0.0)
        placed, clock = [], 0.0
        for index, phase in enumerate(self.phases):
            if phase.duration_seconds is not None:
                length = phase.duration_seconds * scale
            else:
                length = rest * (phase.share or 0.0) / shares
            placed.append(ScheduledPhase(index, phase, clock, clock + length))
            clock += length
        return placed

    @classmethod
    def parse(cls, data: Any, where: str = "scenario") -> Scenario:
        """Build a scenario from its YAML document."""
        _check_keys(where, data, {"name", "description", "duration_seconds", "phases", "watch_signals"})
        phases = data.get("phases")
        if not phases or not isinstance(phases, list):
            raise ScenarioError(f"{where}: needs a non-empty list of phases")
        duration = float(data.get("duration_seconds", DEFAULT_DURATION_SECONDS))
        if duration <= 0:
            raise ScenarioError(f"{where}: duration_seconds must be > 0")
        return cls(
            name=str(data.get("name") or where),
            description=str(data.get("description") or ""),
            phases=tuple(Phase.parse(p, f"{where}.phases[{i}]") for i, p in enumerate(phases)),
            duration_seconds=duration,
            watch_signals=tuple(
                Signal.parse(s, f"{where}.watch_signals[{i}]") for i, s in enumerate(data.get("watch_signals") or ())
            ),
        )


def phase_at(schedule: list[ScheduledPhase], elapsed: float) -> ScheduledPhase | None:
    """Return the phase running `elapsed` seconds into the run, or None once the run is over."""
    for placed in schedule:
        if placed.start <= elapsed < placed.end:
            return placed
    return None


def scenario_dirs(model_dir: Path | None = None) -> list[Path]:
    """Return where scenarios are looked up by name: the model folder's own first, then the built-in ones."""
    return ([Path(model_dir) / SCENARIOS_DIR] if model_dir is not None else []) + [BUILTIN_DIR]


def builtin_names(model_dir: Path | None = None) -> list[str]:
    """Return the scenario names known for a model: its own and the built-in (generic) ones."""
    return sorted({p.stem for d in scenario_dirs(model_dir) for p in d.glob("*.yaml")})


def scenario_path(name_or_path: str | Path, model_dir: Path | None = None) -> Path:
    """Return the file of a scenario given by name (model folder's first, then built-in) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        for folder in scenario_dirs(model_dir):
            if (folder / f"{name_or_path}.yaml").is_file():
                return folder / f"{name_or_path}.yaml"
    if not path.is_file():
        known = builtin_names(model_dir)
        raise ScenarioError(f"no scenario {str(name_or_path)!r}: give a file path or one of {known}")
    return path


def load_scenario(
    name_or_path: str | Path, model_dir: Path | None = None, description: ModelDescription | None = None
) -> Scenario:
    """Load a scenario by name (the model folder's, then built-in) or by path; check it against `description`."""
    path = scenario_path(name_or_path, model_dir)
    # A model name holds letters, digits and `_ . -`: as a regex it matches itself (a dot matches any character).
    model = description.name if description is not None else ".*"
    text = path.read_text().replace(MODEL_PLACEHOLDER, model)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    scenario = Scenario.parse(data, where=path.stem)
    if description is not None:
        scenario.check(description)
    return scenario
