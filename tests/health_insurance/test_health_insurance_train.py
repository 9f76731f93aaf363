"""The health_insurance example: real survey rows, training as a user runs it, a reference that fits its description.

Training takes a few seconds: it runs once per module, as `python -m health_insurance.train` into a temporary
model folder holding a copy of models/health_insurance/model.yaml.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from health_insurance.data import CATEGORICAL, FEATURES, TARGET, load_hi
from monitoring_core.description import Kind, Task
from monitoring_core.model_folder import load_model_folder
from monitoring_core.paths import MODELS_DIR, REPO_DIR
from monitoring_core.reference import reference_model_version
from monitoring_core.validation import validate_request


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Train into a temporary model folder with the command a user runs; return the folder and the output."""
    folder = tmp_path_factory.mktemp("models") / "health_insurance"
    folder.mkdir()
    shutil.copy(MODELS_DIR / "health_insurance" / "model.yaml", folder / "model.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "health_insurance.train", "--out-dir", str(folder), "--seed", "5"],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, done.stdout


def test_the_data_is_the_real_survey_with_string_categories() -> None:
    frame = load_hi()
    assert len(frame) == 22_272 and not frame.isna().any().any()
    for column in CATEGORICAL:
        assert frame[column].map(type).eq(str).all(), column
    assert set(frame[TARGET]) == {"no", "yes"}
    assert set(frame["region"]) == {"northcentral", "south", "west", "other"}


def test_training_prints_its_progress_and_a_held_out_score(trained) -> None:
    _, out = trained
    for step in ("loading the HI data set", "fitting on", "held-out accuracy", "wrote", "done in"):
        assert step in out, out
    accuracy = float(out.split("held-out accuracy ")[1].split()[0])
    majority = float(out.split("majority class ")[1].split(")")[0])
    assert accuracy > majority + 0.1, "the model learns more than the majority class"


def test_reference_fits_the_description(trained) -> None:
    folder, _ = trained
    model = load_model_folder(folder)
    description = model.description
    reference = pd.read_parquet(model.reference_path)
    assert description.task is Task.CLASSIFICATION and len(reference) == 5_000
    for column in (*description.feature_names, description.target_column, *description.output_columns):
        assert column in reference, f"described column {column} missing from the reference"
    assert set(description.feature_names) == set(FEATURES)
    assert set(reference[description.target_column]) == set(description.class_keys)
    assert set(reference[description.prediction_column]) <= set(description.class_keys)
    probabilities = reference[list(description.probability_columns.values())]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    for spec in description.features:
        if spec.kind is Kind.CATEGORICAL:
            assert set(reference[spec.name]) <= {str(v) for v in spec.values}, spec.name
        else:
            assert reference[spec.name].between(spec.minimum, spec.maximum).all(), spec.name
    assert set(description.segment_of(reference)) == {"northcentral", "south", "west", "other"}
    assert reference_model_version(model.reference_path).startswith("HI-")
    for body in reference[list(description.feature_names)].head(200).to_dict("records"):
        validate_request(description, body)


def test_held_out_quality_clears_the_alert_floors(trained) -> None:
    folder, _ = trained
    model = load_model_folder(folder)
    reference = pd.read_parquet(model.reference_path)
    correct = reference[model.description.prediction_column] == reference[model.description.target_column]
    bounds = model.description.alert_bounds()
    assert bounds["accuracy"][0] == "min" and correct.mean() > bounds["accuracy"][1] + 0.04
    # Every region is served about as well: a segment alert on clean traffic would be noise.
    by_region = correct.groupby(reference["region"]).mean()
    assert (by_region > bounds["accuracy"][1]).all(), by_region


def test_the_pickle_predicts_classes_and_probabilities_from_a_dataframe(trained) -> None:
    folder, _ = trained
    model = load_model_folder(folder)
    assert model.model_path == folder / "model.pkl"
    pipeline = pickle.loads(model.model_path.read_bytes())
    reference = pd.read_parquet(model.reference_path)
    features = reference[list(model.description.feature_names)].head(50)
    assert list(pipeline.classes_) == list(model.description.class_keys)
    np.testing.assert_array_equal(pipeline.predict(features), reference[model.description.prediction_column][:50])
    probabilities = pipeline.predict_proba(features)
    assert probabilities.shape == (50, 2)
    np.testing.assert_allclose(probabilities[:, 1], reference["proba_yes"][:50])
    # A category the survey never had is ignored, not an error (the simulator's unseen values reach it).
    odd = features.head(1).assign(region="atlantis")
    assert pipeline.predict(odd)[0] in model.description.class_keys
