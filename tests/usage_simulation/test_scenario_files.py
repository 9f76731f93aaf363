"""Scenario files: the built-ins load, bad files fail with a message naming the problem, phases land on the clock."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ride_duration.synthetic import DriftParams
from usage_simulation.scenario import Scenario, ScenarioError, Signal, builtin_names, load_scenario, phase_at

REQUIRED_BUILTINS = {
    "baseline",
    "covariate_shift",
    "new_zones",
    "missing_values",
    "schema_change",
    "concept_drift",
    "segment_degradation",
    "outage",
}


def test_every_issue_scenario_is_built_in() -> None:
    assert set(builtin_names()) >= REQUIRED_BUILTINS


@pytest.mark.parametrize("name", sorted(REQUIRED_BUILTINS | {"demo"}))
def test_builtin_loads_with_a_clean_phase_first_and_signals_on_every_faulty_phase(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name and scenario.description
    assert scenario.phases[0].clean
    for phase in scenario.phases[1:]:
        assert not phase.clean and phase.expected_signals, f"{name}.{phase.name} injects nothing checkable"
    assert scenario.signals_to_watch(), "a clean phase needs something to watch for false alarms"


def test_builtin_faults_are_what_their_names_say() -> None:
    faulty = {name: load_scenario(name).phases[-1] for name in REQUIRED_BUILTINS - {"baseline"}}
    assert faulty["covariate_shift"].drift.distance_scale > 1
    assert faulty["new_zones"].drift.new_zone_share > 0
    assert faulty["missing_values"].drift.missing_share > 0
    assert faulty["concept_drift"].drift.congestion > 1
    assert faulty["segment_degradation"].drift == DriftParams(borough="Manhattan", borough_congestion=2.0)
    assert faulty["outage"].outage
    assert faulty["schema_change"].schema_change.rename == {"trip_distance": "trip_miles"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "custom.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_user_scenario_file_with_fixed_and_shared_phases(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        name: mine
        description: my own
        duration_seconds: 100
        phases:
          - {name: warmup, duration_seconds: 20}
          - {name: a, share: 3}
          - name: b
            share: 1
            drift: {congestion: 2.0}
            expected_signals: [ModelQualityDegraded, 'max(evidently_model_quality{metric="rmse"}) > 9']
        """,
    )
    scenario = load_scenario(str(path))
    placed = scenario.schedule()
    assert [(p.phase.name, p.start, p.end) for p in placed] == [("warmup", 0, 20), ("a", 20, 80), ("b", 80, 100)]
    assert phase_at(placed, 85).phase.name == "b" and phase_at(placed, 100) is None
    alert, expr = placed[2].phase.expected_signals
    assert alert == Signal(
        "ModelQualityDegraded", 'ALERTS{alertname="ModelQualityDegraded",alertstate="firing"}', "ModelQualityDegraded"
    )
    assert expr.promql == 'max(evidently_model_quality{metric="rmse"}) > 9' and expr.alert is None
    assert not placed[2].phase.clean and placed[1].phase.clean


def test_schedule_scales_to_the_asked_length() -> None:
    scenario = Scenario.parse({"name": "s", "phases": [{"duration_seconds": 30}, {"duration_seconds": 90}]})
    assert scenario.natural_duration() == 120
    assert [(p.start, p.end) for p in scenario.schedule(12)] == [(0, 3), (3, 12)]
    shared = load_scenario("covariate_shift").schedule(10)
    assert [(p.start, p.end) for p in shared] == [(0, 5), (5, 10)]


def test_pending_alert_signal_accepts_either_state() -> None:
    signal = Signal.parse({"alert": "DataDriftDetected", "state": "pending"}, "x")
    assert signal.promql == 'ALERTS{alertname="DataDriftDetected"}' and "pending" in signal.name


def test_alert_signal_narrowed_by_labels() -> None:
    signal = Signal.parse({"alert": "FeatureDriftDetected", "labels": {"feature": "trip_distance"}}, "x")
    assert signal.promql == 'ALERTS{alertname="FeatureDriftDetected",feature="trip_distance",alertstate="firing"}'
    assert signal.name == "FeatureDriftDetected feature=trip_distance"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "x"}, "non-empty list of phases"),
        ({"phases": [{"name": "a", "colour": "red"}]}, "unknown key(s) ['colour']"),
        ({"phases": [{"drift": {"distance_scal": 2}}]}, "unknown key(s) ['distance_scal']"),
        ({"phases": [{"drift": {"distance_scale": -1}}]}, "must be > 0"),
        ({"phases": [{"share": 1, "duration_seconds": 5}]}, "not both"),
        ({"phases": [{"share": 0}]}, "length must be > 0"),
        ({"phases": [{"schema_change": {"rename": {"trip_dist": "x"}}}]}, "not schema fields: ['trip_dist']"),
        ({"phases": [{"schema_change": {"retype": {"PULocationID": "list"}}}]}, "retype targets"),
        ({"phases": [{"expected_signals": [{"alert": "A", "promql": "up"}]}]}, "exactly one of"),
        ({"phases": [{"expected_signals": [{"alert": "A", "state": "inactive"}]}]}, "state must be"),
        ({"phases": "abc"}, "non-empty list of phases"),
    ],
)
def test_bad_scenarios_are_refused_with_the_reason(document: dict, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario.parse(document)
    assert message in str(caught.value)


def test_unknown_scenario_name_lists_the_built_ins() -> None:
    with pytest.raises(ScenarioError, match="covariate_shift"):
        load_scenario("no_such_scenario")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "phases: [\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(path)
