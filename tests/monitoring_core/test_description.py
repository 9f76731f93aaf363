"""The model description: validation with one line naming the key, derived columns, segments, hashing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from monitoring_core.description import DescriptionError, Kind, ModelDescription, parse_description
from monitoring_core.model_folder import discover_models, load_model_folder, main
from monitoring_core.records import label_model, row_model
from monitoring_core.validation import validate_request

ROOT = Path(__file__).resolve().parents[2]

CLASSIFIER = {
    "name": "penguins",
    "task": "classification",
    "classes": ["Adelie", "Chinstrap", "Gentoo"],
    "target": {"name": "species"},
    "prediction": {"probabilities": {"Adelie": "p_adelie", "Chinstrap": "p_chinstrap", "Gentoo": "p_gentoo"}},
    "features": [
        {"name": "island", "kind": "categorical"},
        {"name": "bill_length_mm", "kind": "numerical", "minimum": 0, "maximum": 100, "nullable": True},
        {"name": "sex", "kind": "categorical", "required": False, "nullable": True},
    ],
    "segments": [{"name": "island_segment", "column": "island"}],
    "alerts": {"accuracy": {"min": 0.8}},
}


def test_a_classifier_description_types_requests_labels_and_rows() -> None:
    d = parse_description(CLASSIFIER)
    assert d.is_classification and d.class_keys == ("Adelie", "Chinstrap", "Gentoo")
    assert d.column_kind("prediction") is Kind.CATEGORICAL and d.column_kind("p_gentoo") is Kind.NUMERICAL
    assert list(d.drift_tests()) == [
        "island",
        "bill_length_mm",
        "sex",
        "prediction",
        "p_adelie",
        "p_chinstrap",
        "p_gentoo",
    ]
    row = validate_request(d, {"island": "Biscoe", "bill_length_mm": 40.1})
    assert row.island == "Biscoe" and row.sex is None
    assert validate_request(d, {"island": 3, "bill_length_mm": 40}).island == "3"  # an integer category is its text
    label = label_model(d).model_validate({"request_id": "a", "species": "Gentoo"})
    assert label.species == "Gentoo"
    with pytest.raises(ValueError, match="must be one of the classes"):
        label_model(d).model_validate({"request_id": "a", "species": "Emperor"})
    forwarded = row_model(d).model_validate(
        {
            "request_id": "a",
            "timestamp": "2026-01-01T00:00:00Z",
            "island": "Dream",
            "bill_length_mm": 39.0,
            "prediction": "Adelie",
            "p_adelie": 0.9,
            "p_chinstrap": 0.05,
            "p_gentoo": 0.05,
        }
    )
    assert forwarded.prediction == "Adelie"
    assert d.alert_bounds() == {"accuracy": ("min", 0.8)}


def test_names_as_data_sets_spell_them_type_requests_labels_and_rows() -> None:
    # Seen: scikit-learn's breast_cancer ("mean radius"), iris ("sepal length (cm)") and wine ("od280/od315_...")
    # columns were refused, so a Pipeline fitted on those frames could not be served without refitting it.
    names = ["mean radius", "sepal length (cm)", "od280/od315_of_diluted_wines", "größe"]
    features = [{"name": n, "kind": "numerical"} for n in names]
    d = parse_description({**CLASSIFIER, "features": features, "segments": [], "target": {"name": "tumour type"}})
    row = dict(zip(names, [1.5, 2.0, 3.0, 4.0], strict=True))
    assert validate_request(d, row).model_dump(include=set(names)) == row
    assert label_model(d).model_validate({"request_id": "a", "tumour type": "Gentoo"}).model_dump()["tumour type"]
    forwarded = {**row, "request_id": "a", "timestamp": "2026-01-01T00:00:00Z", "prediction": "Adelie"}
    assert row_model(d).model_validate(forwarded).model_dump(include=set(names)) == row


def test_class_zero_is_a_class() -> None:
    d = parse_description({**CLASSIFIER, "classes": [0, 1], "prediction": {}})
    assert label_model(d).model_validate({"request_id": "a", "species": 0}).species == "0"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"task": "ranking"}, "task"),
        ({"classes": ["a"]}, "classes: a classifier needs at least two classes"),
        ({"features": [{"name": "x", "kind": "numerical", "type": "str"}]}, "features.0"),
        ({"features": [{"name": "request_id", "kind": "numerical"}]}, "reserved"),
        ({"alerts": {"rmse": {"max": 3}}}, "alerts: unknown metric 'rmse'"),
        ({"segments": [{"name": "s", "column": "nope"}]}, "segments: column 'nope' is not a feature"),
        ({"features": [{"name": "t", "kind": "datetime", "timezone": "Mars/Olympus"}]}, "unknown timezone"),
        # Hostile probes: names colliding with the label's, the document's or the answer's own keys.
        ({"target": {"name": "request_id"}}, "target.name: 'request_id' is reserved"),
        ({"prediction": {"name": "model_version"}}, "prediction.name: 'model_version' is reserved"),
        ({"prediction": {"name": "species"}}, "prediction.name: 'species' is reserved for the stack or is the target"),
        ({"prediction": {"answer_keys": ["request_id"]}}, "prediction.answer_keys: ['request_id']"),
        ({"prediction": {"probabilities": {"Adelie": "island", "Gentoo": "p"}}}, "column(s) ['island'] are features"),
        ({"prediction": {"probabilities": {"Adelie": "p", "Gentoo": "p"}}}, "or given twice"),
        ({"features": [{"name": "$where", "kind": "numerical"}]}, "'$where' is not a usable column name: up to 64"),
        ({"target": {"name": "species "}}, "target.name: 'species ' is not a usable column name"),
    ],
)
def test_a_bad_description_is_one_line_naming_the_key(change: dict, key: str) -> None:
    with pytest.raises(DescriptionError) as caught:
        parse_description({**CLASSIFIER, **change}, "models/x/model.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("models/x/model.yaml: ") and key in message


@pytest.mark.parametrize(
    ("rename", "expected"),
    [
        (("features", "feature"), "feature: unknown key (did you mean 'features'?) (and 1 more)"),
        (("prediction", "predicton"), "predicton: unknown key (did you mean 'prediction'?)"),
        (("features", None), "features: Field required"),
    ],
)
def test_a_misspelt_or_missing_key_is_named_first(rename: tuple[str, str | None], expected: str) -> None:
    # Hostile probe: the misspelling is the cause; the required key it leaves missing is the consequence.
    old, new = rename
    raw = {k: v for k, v in CLASSIFIER.items() if k != old} | ({new: CLASSIFIER[old]} if new else {})
    with pytest.raises(DescriptionError) as caught:
        parse_description(raw, "m.yaml")
    assert str(caught.value) == f"m.yaml: {expected}"
    nested = {**CLASSIFIER, "features": [{"name": "x", "knd": "numerical"}]}
    with pytest.raises(DescriptionError, match=r"features\.0\.knd: unknown key \(did you mean 'kind'\?\)"):
        parse_description(nested, "m.yaml")


def test_segments_by_map_bins_and_values() -> None:
    frame = pd.DataFrame({"zone": [1, 2, None, 9], "age": [10.0, 35.0, None, 80.0]})
    base = {
        **CLASSIFIER,
        "features": [{"name": "zone", "kind": "categorical", "type": "int"}, {"name": "age", "kind": "numerical"}],
    }
    mapped = parse_description(
        {**base, "segments": [{"name": "area", "column": "zone", "map": {1: "north", 2: "south"}}]}
    )
    assert mapped.segment_of(frame).tolist() == ["north", "south", "Unknown", "Other"]
    binned = parse_description(
        {**base, "segments": [{"name": "ages", "column": "age", "bins": [0, 30, 120], "labels": ["young", "old"]}]}
    )
    assert binned.segment_of(frame).tolist() == ["young", "old", "Unknown", "old"]
    # A present number outside the edges is named for its side, never Unknown (which says "missing").
    outside = pd.DataFrame({"zone": [1] * 5, "age": [-1.0, 0.0, 119.9, 120.0, 300.0]})
    assert binned.segment_of(outside).tolist() == ["< 0", "young", "old", ">= 120", ">= 120"]
    assert binned.segment.names() == {"young", "old", "< 0", ">= 120", "Unknown"}
    assert mapped.segment.names() == {"north", "south", "Other", "Unknown"}
    plain = parse_description({**base, "segments": [{"name": "z", "column": "zone"}]})
    assert plain.with_segment(frame)["z"].tolist() == ["1", "2", "Unknown", "9"]


def test_the_shipped_examples_and_discovery(tmp_path: Path) -> None:
    models = discover_models(ROOT / "models")
    assert "ride_duration" in models and models["ride_duration"].description.task.value == "regression"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "model.yaml").write_text(yaml.safe_dump(CLASSIFIER))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "model.yaml").write_text(yaml.safe_dump(CLASSIFIER))
    with pytest.raises(DescriptionError, match="is also the name of"):
        discover_models(tmp_path)
    (tmp_path / "b" / "model.yaml").write_text("name: [unclosed")
    with pytest.raises(DescriptionError, match="not valid YAML"):
        load_model_folder(tmp_path / "b")


def test_descriptions_hash_by_content() -> None:
    assert hash(parse_description(CLASSIFIER)) == hash(parse_description(json.loads(json.dumps(CLASSIFIER))))
    assert hash(parse_description(CLASSIFIER)) != hash(parse_description({**CLASSIFIER, "name": "other"}))


def test_the_committed_json_schema_is_the_description_s(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(
        (ROOT / "docs" / "model_description.schema.json").read_text()
    )
    assert ModelDescription.model_json_schema()["title"] == "ModelDescription"


def test_no_core_module_names_a_model() -> None:
    # The layering: the core takes a description; it imports no model package and names no example's column.
    example_words = ("ride_duration", "PULocationID", "DOLocationID", "trip_distance", "borough")
    for path in (ROOT / "monitoring_core").glob("*.py"):
        text = path.read_text()
        if path.name in {"paths.py", "settings.py"}:  # the shipped example's folder is the default MODEL_DIR
            text = text.replace('"ride_duration"', "")
        found = [w for w in example_words if w in text]
        assert not found, f"{path.name} names {found}"


def test_check_reads_the_reference_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """README step 3 checks the folder: a reference that does not fit its description is named there, not at prepare."""
    folder = tmp_path / "penguins"
    folder.mkdir()
    (folder / "model.yaml").write_text(yaml.safe_dump(CLASSIFIER))
    assert main(["check", str(folder)]) == 0
    assert "no reference yet" in capsys.readouterr().out
    rows = {
        "island": ["Dream", "Biscoe"],
        "bill_length_mm": [40.0, 45.0],
        "sex": ["f", None],
        "species": ["Adelie", "Gentoo"],
        "prediction": ["Adelie", "Gentoo"],
        "p_adelie": [0.8, 0.1],
        "p_chinstrap": [0.1, 0.1],
        "p_gentoo": [0.1, 0.8],
    }
    pd.DataFrame(rows).to_parquet(folder / "reference.parquet")
    assert main(["check", str(folder)]) == 0
    assert "the reference fits" in capsys.readouterr().out
    pd.DataFrame(rows).drop(columns=["bill_length_mm"]).to_parquet(folder / "reference.parquet")
    assert main(["check", str(folder)]) == 2
    assert "bill_length_mm" in capsys.readouterr().err
