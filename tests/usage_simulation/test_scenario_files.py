"""Scenario files: each model's and the built-in ones load and fit their model, bad files fail naming the problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitoring_core.model_folder import read_description
from monitoring_core.paths import MODELS_DIR
from usage_simulation.faults import Fault
from usage_simulation.scenario import (
    BUILTIN_DIR,
    Scenario,
    ScenarioError,
    Signal,
    builtin_names,
    load_scenario,
    phase_at,
)

TAXI_DIR = MODELS_DIR / "ride_duration"
INSURANCE_DIR = MODELS_DIR / "health_insurance"
GENERIC = {"baseline", "outage"}
REQUIRED_TAXI = {
    "baseline",
    "covariate_shift",
    "new_zones",
    "missing_values",
    "schema_change",
    "concept_drift",
    "segment_degradation",
    "outage",
}


REQUIRED_INSURANCE = {"clean", "covariate_shift", "mix_shift", "concept_drift", "segment_degradation"}
EVERY = [(TAXI_DIR, n) for n in sorted(REQUIRED_TAXI | {"demo"})]
EVERY += [(INSURANCE_DIR, n) for n in sorted(REQUIRED_INSURANCE)]


def test_every_issue_scenario_resolves_by_name_for_each_model() -> None:
    assert set(builtin_names()) == GENERIC, "the built-in scenarios name no model's column"
    assert set(builtin_names(TAXI_DIR)) >= REQUIRED_TAXI
    assert set(builtin_names(INSURANCE_DIR)) >= REQUIRED_INSURANCE | GENERIC


def test_built_in_scenarios_name_no_column() -> None:
    for path in BUILTIN_DIR.glob("*.yaml"):
        scenario = load_scenario(path)
        assert not [f for p in scenario.phases for f in p.faults if f.column], path


@pytest.mark.parametrize(("model_dir", "name"), EVERY, ids=[f"{d.name}-{n}" for d, n in EVERY])
def test_scenario_loads_fits_its_model_with_a_clean_phase_first_and_signals_on_faulty_phases(
    model_dir: Path, name: str
) -> None:
    scenario = load_scenario(name, model_dir, read_description(model_dir / "model.yaml"))
    assert scenario.name == name and scenario.description
    assert scenario.phases[0].clean
    for phase in scenario.phases[1:]:
        assert not phase.clean and phase.expected_signals, f"{name}.{phase.name} injects nothing checkable"
    assert scenario.signals_to_watch(), "a clean phase needs something to watch for false alarms"


@pytest.mark.parametrize("name", sorted(GENERIC))
def test_built_in_signals_watch_the_simulated_model_only(name: str) -> None:
    """Seen: `baseline` for one's own model in the demo stack scored the taxi's drift as this model's false alarms
    (`max(evidently_dataset_drift) == 1` over every model), and another model's traffic hid an `outage`."""
    import re

    own = read_description(INSURANCE_DIR / "model.yaml").model_copy(update={"name": "churn"})
    scenario = load_scenario(name, INSURANCE_DIR, own)
    signals = [*scenario.signals_to_watch(), *(s for p in scenario.phases for s in p.expected_signals)]
    labelled = re.compile(r"(evidently_\w+|prediction_predictions_total|prediction_model_info|ALERTS)\{([^}]*)\}")
    selectors = [(m.group(1), m.group(2)) for s in signals for m in labelled.finditer(s.promql)]
    assert all(re.search(r"\w\{", s.promql) for s in signals), [s.promql for s in signals]  # none unnarrowed
    assert selectors, [s.promql for s in signals]
    for metric, selector in selectors:
        assert 'model=~"churn"' in selector, (metric, selector)
    assert 'model=~".*"' in load_scenario(name, INSURANCE_DIR).signals_to_watch()[0].promql  # no model: every one


def _ops(model_dir: Path, name: str) -> set[tuple]:
    return {(f.op, f.column, f.segment) for f in load_scenario(name, model_dir).phases[-1].faults}


def test_taxi_faults_are_what_their_names_say() -> None:
    assert _ops(TAXI_DIR, "covariate_shift") == {("select", "trip_distance", None)}
    assert _ops(TAXI_DIR, "new_zones") == {("unseen", "PULocationID", None)}
    assert _ops(TAXI_DIR, "missing_values") == {("missing", "passenger_count", None)}
    assert _ops(TAXI_DIR, "concept_drift") == {("scale_label", None, None)}
    assert _ops(TAXI_DIR, "segment_degradation") == {("scale_label", None, "Manhattan")}
    assert load_scenario("outage", TAXI_DIR).phases[-1].outage
    rename = load_scenario("schema_change", TAXI_DIR).phases[-1].faults[-1]
    assert rename == Fault("rename", "trip_distance", options={"to": "trip_miles"})


def test_classifier_faults_are_what_their_names_say() -> None:
    assert _ops(INSURANCE_DIR, "covariate_shift") == {("select", "hours_per_week", None)}
    assert _ops(INSURANCE_DIR, "mix_shift") == {("mix", "region", None)}
    assert _ops(INSURANCE_DIR, "concept_drift") == {("flip_labels", None, None)}
    assert _ops(INSURANCE_DIR, "segment_degradation") == {("flip_labels", None, "south")}


def test_a_model_folder_scenario_shadows_a_built_in_one(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "baseline.yaml").write_text("name: mine\nphases: [{name: only}]\n")
    assert load_scenario("baseline", tmp_path).name == "mine"
    assert load_scenario("outage", tmp_path).phases[-1].outage


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
            faults: [{op: scale_label, factor: 2.0}]
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
    shared = load_scenario("covariate_shift", TAXI_DIR).schedule(10)
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
        ({"phases": [{"drift": {"distance_scale": 2}}]}, "unknown key(s) ['drift']"),
        ({"phases": [{"faults": {"op": "scale"}}]}, "expected a list of faults"),
        ({"phases": [{"faults": [{"op": "scale", "column": "x", "factor": 0.5, "sharee": 1}]}]}, "['sharee']"),
        ({"phases": [{"share": 1, "duration_seconds": 5}]}, "not both"),
        ({"phases": [{"share": 0}]}, "length must be > 0"),
        ({"phases": [{"faults": [{"op": "retype", "column": "x", "to": "list"}]}]}, "retype's `to`"),
        ({"phases": [{"expected_signals": [{"alert": "A", "promql": "up"}]}]}, "exactly one of"),
        ({"phases": [{"expected_signals": [{"alert": "A", "state": "inactive"}]}]}, "state must be"),
        ({"phases": "abc"}, "non-empty list of phases"),
    ],
)
def test_bad_scenarios_are_refused_with_the_reason(document: dict, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario.parse(document)
    assert message in str(caught.value)


def test_unknown_scenario_name_lists_the_model_s_and_the_built_ins() -> None:
    with pytest.raises(ScenarioError, match="covariate_shift") as caught:
        load_scenario("no_such_scenario", TAXI_DIR)
    assert "baseline" in str(caught.value) and "mix_shift" not in str(caught.value)


def test_a_taxi_scenario_does_not_fit_the_classifier() -> None:
    description = read_description(INSURANCE_DIR / "model.yaml")
    with pytest.raises(ScenarioError, match="trip_distance"):
        load_scenario(TAXI_DIR / "scenarios" / "covariate_shift.yaml", INSURANCE_DIR, description)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "phases: [\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(path)
