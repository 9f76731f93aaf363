"""The API of a model that is not the taxi's, in-process: a classifier with the integer classes 0 and 1.

Answers carry the class as text and the probabilities; labels are a class of the description
(class 0 is a class, not a missing value); the OpenAPI document is the description's.
"""

from __future__ import annotations

import pytest
from sklearn_models import binary_wine_folder, row_of, wine_frame

from prediction_service import create_app
from prediction_service.settings import Settings


@pytest.fixture(scope="module")
def binary_client(tmp_path_factory: pytest.TempPathFactory):
    folder = binary_wine_folder(tmp_path_factory.mktemp("binary") / "barolo")
    settings = Settings(
        model_dir=folder, log_to_mongodb=False, forward_to_metrics=False, spool_dir=folder.parent / "spool"
    )
    return create_app(settings).test_client()


def test_a_classifier_answers_a_class_and_its_probabilities(binary_client) -> None:
    frame, _ = wine_frame()
    answers = binary_client.post("/predict", json=[row_of(frame, 0), row_of(frame, 120)]).get_json()
    assert [a["prediction"] for a in answers] == ["1", "0"]  # the first wine is a barolo, the 121st is not
    for answer in answers:
        assert set(answer) == {"request_id", "prediction", "model_version", "probabilities"}
        assert set(answer["probabilities"]) == {"0", "1"} and sum(answer["probabilities"].values()) == pytest.approx(1)


@pytest.mark.parametrize(
    ("label", "status", "outcome"),
    [(0, 202, "queued"), (1, 202, "queued"), ("0", 202, "queued"), (2, 400, "invalid"), (0.5, 400, "invalid")],
)
def test_labels_are_classes_of_the_description(binary_client, label, status, outcome) -> None:
    response = binary_client.post("/feedback", json={"request_id": "r1", "is_barolo": label})
    assert response.status_code == status, response.get_json()
    if status == 202:
        assert response.get_json()["items"][0]["outcome"] == outcome
    else:
        assert response.get_json()["details"][0]["field"] == "is_barolo"
    assert binary_client.post("/feedback", json={"request_id": "r1", "duration": 3}).status_code == 400


def test_the_openapi_document_is_the_descriptions(binary_client) -> None:
    doc = binary_client.get("/openapi.json").get_json()
    assert "barolo" in doc["info"]["title"] and "ride" not in doc["info"]["title"].lower()
    schemas = doc["components"]["schemas"]
    assert set(schemas["Request"]["properties"]) >= {"alcohol", "proline", "alcohol_level"}
    assert "is_barolo" in schemas["Label"]["properties"]
    assert schemas["Prediction"]["properties"]["prediction"]["enum"] == ["0", "1"]
    assert set(schemas["Prediction"]["properties"]["probabilities"]["properties"]) == {"0", "1"}
