"""`prepare` writes a calibration the service uses without simulating; `draft` writes a description that monitors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from evidently_support import diabetes_regressor, rows_of, wine_classifier, write_folder

from evidently_service import create_app
from evidently_service.evaluator import ModelMonitor
from evidently_service.settings import Settings
from monitoring_core.description import DescriptionError, ModelDescription, Task
from monitoring_core.model_folder import load_model_folder
from monitoring_core.monitoring_config import load_config
from monitoring_core.prepare import load_prepared, prepare_folder
from monitoring_core.reference_check import check_reference
from monitoring_core.reference_data import deduplicate, typed_reference

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"window_size": 200, "min_labelled_rows": 20}}))
    return path


def test_a_prepared_folder_starts_with_every_threshold_and_a_stale_one_is_ignored(tmp_path, config) -> None:
    folder_path, frame = diabetes_regressor(tmp_path / "models", rows=150)
    folder = load_model_folder(folder_path)
    lines: list[str] = []
    prepare_folder(folder, config, say=lines.append)
    assert lines[0].startswith("diabetes_150: reference")
    assert any(line.startswith("diabetes_150: wrote") and "calibration.json" in line for line in lines)
    # 150 reference rows are too few for a quality estimator: prepare says so and goes on.
    assert lines[-1] == (
        "diabetes_150: no performance estimator (no estimate: the reference has 150 labelled rows; at least 200)"
    )
    assert load_prepared(folder) is not None

    model_config = load_config(config, {folder.name: folder})[folder.name]
    monitor = ModelMonitor.from_config(model_config, folder)
    assert monitor.prepared and monitor.reference_too_small is not None  # known at start, from the file
    rows, labels = rows_of(frame, yaml.safe_load((folder_path / "model.yaml").read_text()), "p")
    from evidently_service.rows import validate_labels, validate_rows

    monitor.window.append(validate_rows(monitor.description, rows)[0])
    monitor.window.add_labels(validate_labels(monitor.description, labels, now=0.0)[0])
    result = monitor.evaluate()
    assert result.model_quality is not None
    assert not monitor.drift.cache._dirty  # nothing simulated: every size up to the window was prepared

    frame.head(149).to_parquet(folder.reference_path, index=False)  # the reference changed: stale
    assert load_prepared(folder) is None


def test_prepare_refuses_a_reference_whose_classes_differ(tmp_path, config) -> None:
    folder_path, frame = wine_classifier(tmp_path / "models")
    frame.loc[0, "cultivar"] = "merlot"
    frame.to_parquet(folder_path / "reference.parquet", index=False)
    with pytest.raises(DescriptionError, match=r"column 'cultivar': value\(s\) \['merlot'\] not among the classes"):
        prepare_folder(load_model_folder(folder_path), config, say=lambda _: None)


def test_probabilities_outside_0_1_are_refused(tmp_path) -> None:
    folder_path, frame = wine_classifier(tmp_path / "models")
    frame.loc[0, "prob_barolo"] = 1.5
    folder = load_model_folder(folder_path)
    with pytest.raises(DescriptionError, match="column 'prob_barolo': class probabilities"):
        check_reference(folder.description, frame, "reference.parquet")


def test_exact_copies_of_rows_are_dropped_only_where_a_feature_is_continuous(tmp_path) -> None:
    folder_path, frame = diabetes_regressor(tmp_path / "models")
    description = load_model_folder(folder_path).description
    doubled = typed_reference(description, pd.concat([frame, frame.head(100)], ignore_index=True))
    kept, dropped = deduplicate(description, doubled)
    assert (len(kept), dropped) == (len(frame), 100)
    # Only discrete columns: rows repeat by nature and stay.
    only_sex = [f for f in description.model_dump()["features"] if f["name"] == "sex"]
    discrete = ModelDescription.model_validate({**description.model_dump(), "features": only_sex})
    assert deduplicate(discrete, doubled)[1] == 0


def _draft(reference: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "monitoring_core.draft", str(reference), *args],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_draft_of_a_reference_validates_and_monitors(tmp_path, task) -> None:
    if task == "classification":
        _, frame = wine_classifier(tmp_path / "source")
        args = ("--name", "drafted", "--task", task, "--target", "cultivar")
    else:
        _, frame = diabetes_regressor(tmp_path / "source")
        args = ("--name", "drafted", "--task", task, "--target", "progression")
    reference = tmp_path / "reference.parquet"
    frame.to_parquet(reference, index=False)
    text = _draft(reference, *args)
    description = yaml.safe_load(text)
    kinds = {f["name"]: f["kind"] for f in description["features"]}
    if task == "classification":
        assert description["classes"] == ["barbera", "barolo", "grignolino"]
        assert description["prediction"]["probabilities"]["barolo"] == "prob_barolo"
        assert kinds["hue_band"] == "categorical" and kinds["alcohol"] == "numerical"
        assert "prob_barolo" not in kinds
    else:
        assert kinds["sex"] == "categorical" and kinds["bmi"] == "numerical"
    folder = write_folder(tmp_path / "models", description, frame)
    loaded = load_model_folder(folder)
    check_reference(loaded.description, frame, "reference.parquet")

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"defaults": {"window_size": 500, "min_labelled_rows": 20}}))
    app = create_app(Settings(models_dir=tmp_path / "models", config_path=config, run_evaluators=False))
    try:
        client = app.test_client()
        rows, labels = rows_of(frame, description, "d")
        assert client.post("/iterate/drafted", json=rows).json["accepted"] == len(frame)
        assert client.post("/feedback/drafted", json=labels).json["matched"] == len(frame)
        result = app.extensions["evidently_service"].monitors["drafted"].evaluate()
        assert set(result.model_quality.metrics) == set(loaded.description.metric_names)
    finally:
        app.extensions["evidently_service"].close()


def test_the_draft_keeps_names_as_data_sets_spell_them_and_orders_integer_classes(tmp_path, capsys) -> None:
    # Hostile probe: a reference with spaces, unicode and reserved names, and 12 integer classes. Seen: the draft
    # left out all 30 features of scikit-learn's breast_cancer ("mean radius", ...) and drafted `features: []`,
    # so a Pipeline fitted on that frame could not be served without renaming and refitting it.
    from monitoring_core import draft

    frame = pd.DataFrame(
        {
            "bill length": [1.0, 2.0] * 12,
            "größe": [3.0, 4.0] * 12,
            "sepal length (cm)": [5.0, 6.0] * 12,
            "od280/od315": [7.0, 8.0] * 12,
            "request_id": [0.5, 0.7] * 12,
            "model_version": [1.5, 2.5] * 12,
            "flipper.mm": [180.0, 190.0] * 12,
            "$where": [1.0, 0.0] * 12,
            "tab\tname": [1.0, 0.0] * 12,
            "label": list(range(12)) * 2,
            "prediction": list(range(12)) * 2,
        }
    )
    frame.to_parquet(tmp_path / "reference.parquet", index=False)
    args = [str(tmp_path / "reference.parquet"), "--name", "odd", "--task", "classification", "--target", "label"]
    assert draft.main(args) == 0
    text = capsys.readouterr().out
    assert "['$where', 'tab\\tname']" in text and "['request_id', 'model_version']" in text and "rename" in text
    description = ModelDescription.model_validate(yaml.safe_load(text))  # it validates as drafted
    assert description.feature_names == ("bill length", "größe", "sepal length (cm)", "od280/od315", "flipper.mm")
    assert list(description.classes) == list(range(12))  # 2 before 10, as a model's classes_


def test_a_categorical_of_thousands_of_values_is_refused_for_drift_and_drafted_unmonitored(tmp_path, capsys) -> None:
    # Hostile probe: 10,000 shop ids; calibrating their drift ran for over 14 minutes (unfinished) under load.
    from monitoring_core import draft
    from monitoring_core.reference_check import MAX_DRIFT_CATEGORIES

    n = MAX_DRIFT_CATEGORIES * 2
    frame = pd.DataFrame(
        {"shop": [f"s{i}" for i in range(n)], "amount": range(n), "spend": range(n), "prediction": range(n)}
    ).astype({"amount": float, "spend": float, "prediction": float})
    frame.to_parquet(tmp_path / "reference.parquet", index=False)
    args = [str(tmp_path / "reference.parquet"), "--name", "shops", "--task", "regression", "--target", "spend"]
    assert draft.main(args) == 0
    text = capsys.readouterr().out
    drafted = yaml.safe_load(text)
    assert drafted["features"][0] == {"name": "shop", "kind": "categorical", "type": "str", "monitor": False}
    assert "['shop']: more than 1000 categories" in text
    # A label outside a range guessed from the reference would be refused and lost: only its sign is drafted.
    assert drafted["target"] == {"name": "spend", "minimum": 0}
    check_reference(ModelDescription.model_validate(drafted), frame, "reference.parquet")  # as drafted: fine
    drafted["features"][0]["monitor"] = True
    with pytest.raises(DescriptionError) as caught:
        check_reference(ModelDescription.model_validate(drafted), frame, "reference.parquet")
    message = str(caught.value)
    assert message.startswith(
        "reference.parquet: column 'shop': 2000 distinct categories; drift is tested over at most"
    )
    assert "`monitor: false`" in message and "\n" not in message


def test_a_reference_too_small_for_drift_still_gets_data_quality(tmp_path) -> None:
    # Hostile probe: a 30-row reference exported no drift (said so) and, silently, no data quality either.
    from evidently_service.evaluator import DATA_QUALITY_ROWS
    from evidently_service.rows import validate_rows

    folder_path, frame = diabetes_regressor(tmp_path / "models", rows=30)
    folder = load_model_folder(folder_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"defaults": {"window_size": 200}}))
    monitor = ModelMonitor.from_config(load_config(config, {folder.name: folder})[folder.name], folder)
    rows, _ = rows_of(
        pd.concat([frame] * 4, ignore_index=True), yaml.safe_load((folder_path / "model.yaml").read_text()), "t"
    )
    monitor.window.append(validate_rows(monitor.description, rows[: DATA_QUALITY_ROWS - 1])[0])
    assert monitor.evaluate().data_quality is None  # too few window rows yet
    monitor.window.append(validate_rows(monitor.description, rows[DATA_QUALITY_ROWS - 1 :])[0])
    result = monitor.evaluate()
    assert result.min_rows is None and result.drift is None and all(monitor.reference_too_small.values())
    assert result.data_quality["bmi"].missing_share == 0.0 and result.data_quality["sex"].new_category_share == 0.0


@pytest.mark.parametrize("pattern", ["p_{}", "{}_score", "P({})"])
def test_the_draft_finds_class_probabilities_by_any_shared_pattern_not_as_features(pattern) -> None:
    # Seen: a wine classifier's `p_barbera`, `p_barolo`, `p_grignolino` drafted as three required request features
    # (numerical, 0-2) and no probabilities: clients had to send them, and log loss, Brier and the estimate were lost.
    from monitoring_core.draft import draft

    rng = np.random.default_rng(0)
    raw = rng.random((40, 3))
    shares = raw / raw.sum(axis=1, keepdims=True)
    classes = ["barbera", "barolo", "grignolino"]
    frame = pd.DataFrame({"alcohol": rng.random(40) * 3 + 11, "s1": rng.random(40)})  # a decoy share column
    for i, cls in enumerate(classes):
        frame[pattern.format(cls)] = shares[:, i]
    frame["cultivar"] = [classes[i] for i in shares.argmax(axis=1)]
    frame["prediction"] = frame["cultivar"]
    drafted = draft(frame, "wine", Task.CLASSIFICATION, "cultivar")
    assert drafted["prediction"]["probabilities"] == {cls: pattern.format(cls) for cls in classes}
    assert [f["name"] for f in drafted["features"]] == ["alcohol", "s1"]
    # Integer classes 0, 1 and a column `s1` (a share, "1" in its name) are no probability pattern: not summing to 1.
    binary = pd.DataFrame({"s1": rng.random(40), "s0": rng.random(40), "label": [0, 1] * 20, "prediction": [0] * 40})
    assert "probabilities" not in draft(binary, "b", Task.CLASSIFICATION, "label")["prediction"]


def test_a_reference_category_longer_than_a_request_may_carry_is_named_at_prepare() -> None:
    # Seen: "reference fits model.yaml", then every reference row holding a 300-character category answered 400.
    description = ModelDescription.model_validate(
        {
            "name": "wine",
            "task": "regression",
            "target": {"name": "y"},
            "features": [{"name": "grape", "kind": "categorical"}],
        }
    )
    frame = pd.DataFrame({"grape": ["", "x" * 300, "rosé"], "y": [1.0, 2.0, 3.0], "prediction": [1.0, 2.0, 3.0]})
    with pytest.raises(DescriptionError) as caught:
        check_reference(description, frame, "reference.parquet")
    assert str(caught.value).startswith("reference.parquet: column 'grape': 1 category longer than 256 characters")
    check_reference(description, frame.iloc[[0, 2]], "reference.parquet")  # "" is a category like any other


def test_the_draft_finds_the_probabilities_of_boolean_classes_as_python_spells_them() -> None:
    # Seen: `proba_True`, `proba_False` (f"proba_{c}" over a model's classes_) drafted as required request features
    # and "no estimate: the model gives no probabilities": boolean classes' keys are "true" and "false".
    from monitoring_core.draft import draft

    rng = np.random.default_rng(1)
    positive = rng.random(30)
    frame = pd.DataFrame({"radius": rng.random(30) * 20, "proba_True": positive, "proba_False": 1 - positive})
    frame["malignant"] = frame["prediction"] = positive > 0.5
    drafted = draft(frame, "tumour", Task.CLASSIFICATION, "malignant")
    assert drafted["prediction"]["probabilities"] == {"true": "proba_True", "false": "proba_False"}
    assert [f["name"] for f in drafted["features"]] == ["radius"]
    one = draft(frame.drop(columns="proba_False"), "tumour", Task.CLASSIFICATION, "malignant")  # the positive alone
    assert one["prediction"]["probabilities"] == {"true": "proba_True"}


def test_the_draft_keeps_a_timezone_aware_columns_zone() -> None:
    # Seen: a reference of Europe/Paris times drafted without `timezone`: served offsets became UTC clock times, so
    # a model reading the hour answered the reference's own rows up to 11 points off its recorded predictions.
    from monitoring_core.draft import draft

    times = pd.date_range("2026-01-01", periods=30, freq="7h", tz="Europe/Paris")
    frame = pd.DataFrame({"visit": times, "naive": times.tz_localize(None), "y": range(30), "prediction": range(30)})
    drafted = {
        f["name"]: f
        for f in draft(frame.astype({"y": float, "prediction": float}), "m", Task.REGRESSION, "y")["features"]
    }
    assert drafted["visit"] == {"name": "visit", "kind": "datetime", "timezone": "Europe/Paris"}
    assert "timezone" not in drafted["naive"]
    ModelDescription.model_validate(
        {"name": "m", "task": "regression", "target": {"name": "y"}, "features": list(drafted.values())}
    )


def test_the_draft_types_a_pandas_category_column_by_its_categories() -> None:
    # Seen: a `category` column of integer codes drafted as `str`: requests' 2 became "2", which the model (fitted on
    # the integers) had never seen, so its encoder ignored the feature for every request.
    from monitoring_core.draft import draft

    codes = pd.Categorical([1, 2, 3] * 10)
    frame = pd.DataFrame(
        {"code": codes, "gap": pd.Categorical([1.0, None, 3.0] * 10), "city": pd.Categorical(["a", "b", "c"] * 10)}
    )
    frame["y"] = frame["prediction"] = np.arange(30.0)
    drafted = {f["name"]: f for f in draft(frame, "m", Task.REGRESSION, "y")["features"]}
    assert drafted["code"] == {"name": "code", "kind": "categorical", "type": "int"}
    assert drafted["gap"] == {"name": "gap", "kind": "categorical", "type": "int", "nullable": True}
    assert drafted["city"] == {"name": "city", "kind": "categorical", "type": "str"}
    described = ModelDescription.model_validate(
        {"name": "m", "task": "regression", "target": {"name": "y"}, "features": list(drafted.values())}
    )
    check_reference(described, frame, "reference.parquet")  # the category dtype is read by its categories too
    assert typed_reference(described, frame)["code"].head(3).tolist() == ["1", "2", "3"]


def test_a_feature_missing_from_every_reference_row_is_drafted_unmonitored_and_named_at_prepare(capsys) -> None:
    # Seen: `prepare` of a reference with an all-NaN column printed "reference fits", then a 20-line traceback
    # ending "ValueError: reference column 'empty' has no usable value".
    from monitoring_core.draft import draft

    frame = pd.DataFrame({"a": np.arange(30.0), "empty": np.nan, "y": np.arange(30.0), "prediction": np.arange(30.0)})
    drafted = draft(frame, "m", Task.REGRESSION, "y")
    assert drafted["features"][1] == {
        "name": "empty",
        "kind": "numerical",
        "type": "float",
        "monitor": False,
        "nullable": True,
    }
    description = ModelDescription.model_validate(drafted)
    check_reference(description, frame, "reference.parquet")  # as drafted: fine
    drafted["features"][1]["monitor"] = True
    with pytest.raises(DescriptionError) as caught:
        check_reference(ModelDescription.model_validate(drafted), frame, "reference.parquet")
    assert str(caught.value).startswith("reference.parquet: column 'empty': no value in the reference")
