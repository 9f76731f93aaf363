"""Each fault operation on rows of scikit-learn data sets, described by their own model.yaml written here.

A regression model on `load_diabetes` and a three-class classifier on `load_wine`: nothing of the taxi example,
so the operations are proven generic. Every test checks what changed and that nothing else did.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_diabetes, load_wine

from monitoring_core.description import ModelDescription, parse_description
from monitoring_core.model_folder import load_model_folder
from monitoring_core.validation import validate_request
from usage_simulation.faults import Fault, FaultError, Reference, apply_body_fault, apply_faults
from usage_simulation.rows import RowSource, to_payloads
from usage_simulation.scenario import Phase, Scenario, ScenarioError

DIABETES_YAML = """
name: diabetes
task: regression
target: {name: progression, minimum: 0, maximum: 400}
features:
  - {name: bmi, kind: numerical, minimum: -1, maximum: 1}
  - {name: bp, kind: numerical}
  - {name: sex, kind: categorical}
  - {name: bp_band, kind: categorical, values: [low, mid, high]}
  - {name: clinic, kind: categorical, type: int, minimum: 1, maximum: 8}
  - {name: visits, kind: numerical, type: int, minimum: 0, maximum: 20, required: false, nullable: true}
segments:
  - {name: sex_group, column: sex}
"""

WINE_YAML = """
name: wine
task: classification
classes: [class_0, class_1, class_2]
target: {name: cultivar}
prediction: {probabilities: {class_0: p0, class_1: p1, class_2: p2}}
features:
  - {name: alcohol, kind: numerical}
  - {name: hue, kind: numerical}
  - {name: colour, kind: categorical}
segments:
  - name: strength
    column: alcohol
    bins: [0, 13, 20]
    labels: [light, strong]
"""


@pytest.fixture(scope="module")
def diabetes() -> tuple[ModelDescription, pd.DataFrame]:
    data = load_diabetes(as_frame=True)
    raw = data.frame
    frame = pd.DataFrame(
        {
            "bmi": raw["bmi"],
            "bp": raw["bp"],
            "sex": np.where(raw["sex"] > 0, "f", "m"),
            # Fixed edges: unequal bands, so "most" and "least frequent" mean something.
            "bp_band": pd.cut(raw["bp"], [-1, -0.02, 0.04, 1], labels=["low", "mid", "high"]).astype(str),
            "clinic": np.arange(len(raw)) % 5 + 1,
            "visits": np.arange(len(raw)) % 7,
            "progression": data.target,
        }
    )
    return parse_description(yaml.safe_load(DIABETES_YAML)), frame


@pytest.fixture(scope="module")
def wine() -> tuple[ModelDescription, pd.DataFrame]:
    data = load_wine(as_frame=True)
    frame = pd.DataFrame(
        {
            "alcohol": data.frame["alcohol"],
            "hue": data.frame["hue"],
            "colour": pd.cut(data.frame["color_intensity"], [0, 3, 6, 20], labels=["pale", "ruby", "deep"]).astype(str),
            "cultivar": [data.target_names[t] for t in data.target],
        }
    )
    return parse_description(yaml.safe_load(WINE_YAML)), frame


def _apply(model: tuple[ModelDescription, pd.DataFrame], *specs: dict, seed: int = 0):
    description, frame = model
    faults = tuple(Fault.parse(s, "test") for s in specs)
    for fault in faults:
        fault.check(description)
    return apply_faults(frame, faults, Reference.of(description, frame), np.random.default_rng(seed))


def _unchanged_except(before: pd.DataFrame, after: pd.DataFrame, *columns: str) -> None:
    rest = [c for c in before.columns if c not in columns]
    pd.testing.assert_frame_equal(before[rest], after[rest])


def test_scale_multiplies_and_clips_to_the_described_bounds(diabetes) -> None:
    _, frame = diabetes
    out, body = _apply(diabetes, {"op": "scale", "column": "bmi", "factor": 20})
    assert not body
    expected = (frame["bmi"] * 20).clip(-1, 1)
    np.testing.assert_allclose(out["bmi"], expected)
    assert out["bmi"].max() == 1 and out["bmi"].min() == -1
    _unchanged_except(frame, out, "bmi")


def test_shift_adds_and_rounds_an_integer_feature(diabetes) -> None:
    _, frame = diabetes
    out, _ = _apply(diabetes, {"op": "shift", "column": "visits", "by": 2.4})
    np.testing.assert_array_equal(out["visits"], (frame["visits"] + 2.4).clip(0, 20).round())
    _unchanged_except(frame, out, "visits")


def test_variance_spreads_around_the_reference_mean(diabetes) -> None:
    _, frame = diabetes
    out, _ = _apply(diabetes, {"op": "variance", "column": "bp", "factor": 3})
    assert out["bp"].mean() == pytest.approx(frame["bp"].mean(), abs=1e-9)
    assert out["bp"].std() == pytest.approx(3 * frame["bp"].std())


def test_select_replaces_rows_with_source_rows_of_the_region_labels_and_all(diabetes) -> None:
    """Pure covariate shift: the inputs move, each row keeps its own label (P(label | inputs) unchanged)."""
    _, frame = diabetes
    above = float(frame["bp"].median())
    out, body = _apply(diabetes, {"op": "select", "column": "bp", "above": above, "share": 0.75}, seed=3)
    assert not body and len(out) == len(frame) and list(out.columns) == list(frame.columns)
    replaced = ~(out == frame).all(axis=1).to_numpy()
    assert 0.6 < replaced.mean() < 0.9 and (out.loc[replaced, "bp"] > above).all()
    source_rows = set(map(tuple, frame.astype(str).to_numpy()))
    assert set(map(tuple, out.astype(str).to_numpy())) <= source_rows  # whole rows, labels with their inputs
    with pytest.raises(FaultError, match="no source row"):
        _apply(diabetes, {"op": "select", "column": "bp", "above": 10_000})
    with pytest.raises(FaultError, match="above"):
        Fault.parse({"op": "select", "column": "bp"}, "test")


@pytest.mark.parametrize(("to", "top"), [("most_frequent", 1), ("least_frequent", 1), ("least_frequent", 2)])
def test_mix_moves_a_share_of_rows_to_known_values_by_frequency(diabetes, to: str, top: int) -> None:
    _, frame = diabetes
    ranked = list(frame["bp_band"].value_counts().index)
    targets = set(ranked[:top] if to == "most_frequent" else ranked[::-1][:top])
    out, _ = _apply(diabetes, {"op": "mix", "column": "bp_band", "share": 0.6, "to": to, "top": top})
    moved = out["bp_band"] != frame["bp_band"]
    assert set(out.loc[moved, "bp_band"]) <= targets
    assert set(out["bp_band"]) <= set(ranked), "only values the reference knows"
    share_in_targets = out["bp_band"].isin(targets).mean()
    before = frame["bp_band"].isin(targets).mean()
    assert share_in_targets == pytest.approx(before + 0.6 * (1 - before), abs=0.08)
    _unchanged_except(frame, out, "bp_band")


def test_unseen_invents_values_no_one_knows(diabetes) -> None:
    _, frame = diabetes
    out, _ = _apply(
        diabetes,
        {"op": "unseen", "column": "clinic", "share": 0.5},
        {"op": "unseen", "column": "sex", "share": 0.3},
    )
    new_clinics = set(out["clinic"]) - set(frame["clinic"])
    assert new_clinics and new_clinics <= {6, 7, 8}, "integers within the described bounds the reference lacks"
    assert (~out["clinic"].isin(frame["clinic"])).mean() == pytest.approx(0.5, abs=0.08)
    new_sexes = set(out["sex"]) - {"f", "m"}
    assert new_sexes and all(v.startswith("unseen_sex_") for v in new_sexes)


def test_unseen_takes_the_values_it_is_given(diabetes) -> None:
    out, _ = _apply(diabetes, {"op": "unseen", "column": "bp_band", "values": ["extreme"], "share": 1})
    assert set(out["bp_band"]) == {"extreme"}


def test_missing_nulls_a_share_and_the_bodies_send_null(diabetes) -> None:
    description, frame = diabetes
    out, _ = _apply(diabetes, {"op": "missing", "column": "visits", "share": 0.4})
    assert out["visits"].isna().mean() == pytest.approx(0.4, abs=0.08)
    bodies = [b for b, _ in to_payloads(description, out)]
    assert sum(b["visits"] is None for b in bodies) == out["visits"].isna().sum()
    for body in bodies[:50]:
        validate_request(description, body)  # nullable: still a valid request


@pytest.mark.parametrize(
    ("spec", "check"),
    [
        ({"op": "drop", "column": "bp"}, lambda b: "bp" not in b and "bmi" in b),
        ({"op": "rename", "column": "bp", "to": "blood_pressure"}, lambda b: "bp" not in b and "blood_pressure" in b),
        ({"op": "retype", "column": "clinic", "to": "str"}, lambda b: isinstance(b["clinic"], str)),
        ({"op": "retype", "column": "bmi", "to": "int"}, lambda b: isinstance(b["bmi"], int)),
    ],
)
def test_body_faults_change_the_request_bodies_only(diabetes, spec: dict, check) -> None:
    description, frame = diabetes
    out, body_faults = _apply(diabetes, spec)
    pd.testing.assert_frame_equal(out, frame)
    ((fault, mask),) = body_faults
    assert mask.all()
    bodies = [apply_body_fault(b, fault) for b, _ in to_payloads(description, out.head(20))]
    assert all(check(b) for b in bodies)


def test_body_fault_through_a_row_source_touches_its_share(tmp_path, diabetes) -> None:
    description, frame = diabetes
    source = RowSource(description, frame, seed=0)
    phase = Phase("p", faults=(Fault.parse({"op": "drop", "column": "bp", "share": 0.3}, "x"),))
    pairs = source.payloads(phase, source.sample(1_000, 5), 5)
    assert sum("bp" not in b for b, _ in pairs) == pytest.approx(300, abs=60)


def test_regression_label_faults_scale_and_shift_the_target_only(diabetes) -> None:
    _, frame = diabetes
    out, _ = _apply(diabetes, {"op": "scale_label", "factor": 1.5}, {"op": "shift_label", "by": 10})
    np.testing.assert_allclose(out["progression"], (frame["progression"] * 1.5 + 10).clip(upper=400))
    _unchanged_except(frame, out, "progression")


def test_flip_labels_moves_a_share_to_another_class(wine) -> None:
    description, frame = wine
    out, _ = _apply(wine, {"op": "flip_labels", "share": 0.4})
    flipped = out["cultivar"] != frame["cultivar"]
    assert flipped.mean() == pytest.approx(0.4, abs=0.1)
    assert set(out["cultivar"]) <= set(description.class_keys)
    _unchanged_except(frame, out, "cultivar")
    towards, _ = _apply(wine, {"op": "flip_labels", "share": 1, "to": "class_2"})
    assert set(towards["cultivar"]) == {"class_2"}


def test_a_fault_confined_to_a_segment_leaves_the_others_alone(wine, diabetes) -> None:
    description, frame = wine
    strong = description.segment_of(frame) == "strong"
    out, _ = _apply(wine, {"op": "flip_labels", "segment": "strong"})
    assert (out.loc[strong, "cultivar"] != frame.loc[strong, "cultivar"]).all()
    assert (out.loc[~strong, "cultivar"] == frame.loc[~strong, "cultivar"]).all()
    # A segment of a column used as it is (diabetes: sex), on a feature fault.
    _, rows = diabetes
    women = rows["sex"] == "f"
    scaled, _ = _apply(diabetes, {"op": "scale", "column": "bp", "factor": 2, "segment": "f"})
    np.testing.assert_allclose(scaled.loc[women, "bp"], rows.loc[women, "bp"] * 2)
    np.testing.assert_allclose(scaled.loc[~women, "bp"], rows.loc[~women, "bp"])


def test_payloads_are_valid_requests_with_labels_of_the_task(diabetes, wine) -> None:
    for description, frame in (diabetes, wine):
        for body, label in to_payloads(description, frame.head(30)):
            assert set(body) == set(description.feature_names)
            validate_request(description, body)
            if description.is_classification:
                assert label in description.class_keys
            else:
                assert isinstance(label, float)


def test_a_model_folder_row_source_and_its_scenario(tmp_path, wine) -> None:
    description, frame = wine
    (tmp_path / "model.yaml").write_text(WINE_YAML)
    frame.to_parquet(tmp_path / "reference.parquet")
    source = RowSource.from_model_dir(tmp_path, seed=1)
    assert source.description == load_model_folder(tmp_path).description
    scenario = Scenario.parse(
        {"name": "s", "phases": [{"name": "c"}, {"name": "f", "faults": [{"op": "flip_labels", "to": "class_0"}]}]}
    )
    scenario.check(description)
    labels = {label for _, label in source.payloads(scenario.phases[1], source.sample(100, 1), 1)}
    assert labels == {"class_0"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"op": "scale", "column": "colour", "factor": 2}, "needs a numerical feature"),
        ({"op": "mix", "column": "hue"}, "needs a categorical feature"),
        ({"op": "missing", "column": "nope"}, "not a feature of wine"),
        ({"op": "scale_label", "factor": 2}, "classification model's labels take flip_labels"),
        ({"op": "flip_labels", "to": "class_9"}, "not a class"),
        ({"op": "flip_labels", "segment": "medium"}, "no segment 'medium'"),
        ({"op": "rename", "column": "hue", "to": "alcohol"}, "already a feature"),
    ],
)
def test_faults_that_do_not_fit_the_model_are_refused(wine, spec: dict, message: str) -> None:
    description, _ = wine
    with pytest.raises(FaultError, match=message):
        Fault.parse(spec, "x").check(description)
    scenario = Scenario.parse({"name": "s", "phases": [{"name": "f", "faults": [spec]}]})
    with pytest.raises(ScenarioError, match=message):
        scenario.check(description)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"column": "x"}, "op must be one of"),
        ({"op": "null", "column": "x"}, "op must be one of"),
        ({"op": "scale", "column": "x"}, "needs ['factor']"),
        ({"op": "scale", "factor": 2}, "needs ['column']"),
        ({"op": "scale", "column": "x", "factor": "big"}, "factor must be a number"),
        ({"op": "scale", "column": "x", "factor": 2, "share": 0}, "share must be"),
        ({"op": "mix", "column": "x", "to": "middle"}, "mix's `to`"),
        ({"op": "retype", "column": "x", "to": "list"}, "retype's `to`"),
        ({"op": "flip_labels", "column": "x"}, "unknown key(s) ['column']"),
        ({"op": "shift", "column": "x", "by": 1, "colour": 2}, "unknown key(s) ['colour']"),
    ],
)
def test_bad_fault_specs_are_refused_with_the_reason(spec: dict, message: str) -> None:
    with pytest.raises(FaultError) as caught:
        Fault.parse(spec, "x")
    assert message in str(caught.value)


def test_a_described_timestamp_replays_rows_in_time_order(tmp_path, wine) -> None:
    description, frame = wine
    text = WINE_YAML + "timestamp: measured_at\n"
    (tmp_path / "model.yaml").write_text(text)
    times = pd.date_range("2024-01-01", periods=len(frame), freq="h")
    frame.assign(measured_at=times[::-1]).to_parquet(tmp_path / "reference.parquet")  # stored newest first
    source = RowSource.from_model_dir(tmp_path, seed=1)
    first, second = source.sample(100, 1), source.sample(100, 2)
    replayed = pd.concat([first, second])["measured_at"]
    assert replayed.iloc[0] == times[0] and replayed.is_monotonic_increasing is False  # wrapped after 178 rows
    assert list(replayed.iloc[:178]) == list(times)
    assert replayed.iloc[178] == times[0]
    bodies = source.payloads(Phase("p"), first, 1)
    assert "measured_at" not in bodies[0][0], "the timestamp orders rows; it is not a feature"
