"""Models and folders nobody on the team has seen: unusable answers and mismatched models, each one clear error.

In-process (the Flask test client, no MongoDB): a model answering NaN, infinity or None for some valid
rows, or raising, gets a 500 naming the row's prediction field, and nothing of that call is logged or
forwarded (a NaN stored or forwarded is refused downstream: issue 25's poison record). The start checks
refuse, with one line, a model whose predict_proba lacks columns and a model fitted on columns the
description does not have.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY
from sklearn.linear_model import LinearRegression
from sklearn_models import HostileRegressor, diabetes_folder, diabetes_frame, fit_diabetes, wine_folder

from monitoring_core.model_folder import load_model_folder
from prediction_service import EXTENSION, create_app
from prediction_service.model_loader import ModelLoadError, load_served_model
from prediction_service.settings import Settings

ROW = {"age": 0.01, "bmi": 0.02, "bp": 0.0, "s5": 0.01, "sex": "male"}


def model_errors(reason: str) -> float | None:
    return REGISTRY.get_sample_value("prediction_model_errors_total", {"model": "diabetes", "reason": reason})


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hostile")
    folder = diabetes_folder(root / "diabetes", model=HostileRegressor(fit_diabetes()))
    settings = Settings(model_dir=folder, log_to_mongodb=False, forward_to_metrics=False, spool_dir=root / "spool")
    app = create_app(settings)
    recorded: list[int] = []
    monitoring = app.extensions[EXTENSION].monitoring
    record = monitoring.record_predictions
    monitoring.record_predictions = lambda docs, rows: recorded.append(len(docs)) or record(docs, rows)
    return app.test_client(), recorded


@pytest.mark.parametrize(("age", "shown"), [(0.5, "nan"), (0.6, "inf"), (0.7, "None")])
def test_an_unusable_answer_is_a_500_naming_the_prediction_and_nothing_is_logged(hostile_app, age, shown) -> None:
    client, recorded = hostile_app
    before, errors = list(recorded), model_errors("unusable_answer")
    answer = client.post("/predict", json={**ROW, "age": age})
    assert answer.status_code == 500
    assert model_errors("unusable_answer") == errors + 1  # counted for ModelAnswersUnusable
    body = answer.get_json()
    assert body["error"] == "the model gave no usable answer"
    assert body["details"] == [
        {"field": "prediction", "message": f"the model answered {shown}, not a finite number", "reason": "model_output"}
    ]
    assert recorded == before  # neither logged nor forwarded
    assert b"NaN" not in answer.data and b"Infinity" not in answer.data


def test_a_batch_with_one_unusable_answer_names_its_index_and_a_good_one_serves(hostile_app) -> None:
    client, recorded = hostile_app
    answer = client.post("/predict", json=[ROW, {**ROW, "age": 0.5}])
    assert answer.status_code == 500 and [d["field"] for d in answer.get_json()["details"]] == ["1.prediction"]
    served = client.post("/predict", json=[ROW, {**ROW, "age": 0.02}])
    assert served.status_code == 200 and all(np.isfinite(a["prediction"]) for a in served.get_json())
    assert recorded[-1] == 2


def test_a_model_raising_on_valid_rows_is_a_500_naming_the_prediction(hostile_app) -> None:
    client, _ = hostile_app
    raised = model_errors("raised")
    answer = client.post("/predict", json=[ROW, {**ROW, "age": 0.8}])
    assert answer.status_code == 500
    assert model_errors("raised") == raised + 2  # every row of the call: none was answered
    answer = client.post("/predict", json={**ROW, "age": 0.8})
    (detail,) = answer.get_json()["details"]
    assert detail["field"] == "prediction" and detail["reason"] == "model_output"
    assert "raised ValueError" in detail["message"] and "beyond this model" not in detail["message"]  # no internals


class TwoColumnProba:
    """A 3-class model whose predict_proba gives 2 columns (pickled by reference to this module)."""

    classes_ = np.array(["barolo", "grignolino", "barbera"])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.classes_[(frame["alcohol"].to_numpy() * 10).astype(int) % 3]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = (frame["alcohol"].to_numpy() - 11) / 4
        return np.column_stack([p, 1 - p])


def test_the_start_checks_name_a_short_predict_proba_and_columns_the_description_lacks(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"its predict_proba gives 2 columns for its 3 classes_"):
        load_served_model(load_model_folder(wine_folder(tmp_path / "wine", model=TwoColumnProba())))
    frame, target = diabetes_frame()
    odd = frame[["age", "bmi"]].rename(columns={"age": "age in years"})  # a column the description lacks
    folder = diabetes_folder(tmp_path / "odd", model=LinearRegression().fit(odd, target))
    with pytest.raises(ModelLoadError) as info:
        load_served_model(load_model_folder(folder))
    message = str(info.value)
    assert (
        "fitted on the column(s) ['age in years']" in message
        and "add it to the description" in message
        and "\n" not in message
    )


@pytest.mark.parametrize("kind", ["pickle", "mlflow"])
def test_a_model_fitted_on_some_features_in_another_order_gets_them_in_its_order(tmp_path: Path, kind: str) -> None:
    """Seen: a Pipeline fitted on the reference's columns in another order than model.yaml's features failed its
    start check ("Feature names must be in the same order as they were in fit"); one fitted on some of them too."""
    from sklearn_models import save_model

    frame, target = diabetes_frame()
    model = LinearRegression().fit(frame[["bmi", "age"]], target)  # the description says age, bmi, bp, s5, ...
    folder = diabetes_folder(tmp_path / kind)
    (folder / "model.pkl").unlink(missing_ok=True)
    save_model(model, folder, kind)
    served = load_served_model(load_model_folder(folder))
    rows = frame.head(5)
    assert served.predict(rows).predictions == pytest.approx(model.predict(rows[["bmi", "age"]]).tolist())


def test_the_start_check_says_when_served_answers_differ_from_the_references_predictions(tmp_path: Path) -> None:
    """Seen: reference rows served 11 points off their recorded predictions (the description lacked the times'
    zone), without a word: the inputs the service feeds differ from those the reference was written with."""
    clean = load_served_model(load_model_folder(diabetes_folder(tmp_path / "clean")))
    assert clean.reference_check == {"rows": 20, "differing": 0}
    assert load_served_model(load_model_folder(wine_folder(tmp_path / "wine"))).reference_check["differing"] == 0
    folder = diabetes_folder(tmp_path / "shifted")
    reference = pd.read_parquet(folder / "reference.parquet")
    reference.loc[reference.index % 2 == 0, "prediction"] += 11.0
    reference.to_parquet(folder / "reference.parquet")
    check = load_served_model(load_model_folder(folder)).reference_check  # served anyway, and said
    assert 5 <= check["differing"] < check["rows"] == 20
    assert check["message"].startswith(f"the model's answers for {check['differing']} of 20 reference rows differ")


def test_the_start_checks_refuse_a_model_with_unusable_answers_on_the_reference(tmp_path: Path) -> None:
    class_none = HostileRegressor(fit_diabetes())
    folder = diabetes_folder(tmp_path / "none", model=class_none)
    reference = pd.read_parquet(folder / "reference.parquet")
    reference.loc[reference.index[::2], "age"] = 0.7  # half the reference answers None
    reference.to_parquet(folder / "reference.parquet", index=False)
    (folder / "model.pkl").write_bytes(pickle.dumps(class_none))
    with pytest.raises(ModelLoadError, match=r"no usable answer for \d+ of 20 reference rows .*None, not a finite"):
        load_served_model(load_model_folder(folder))
