"""The OpenAPI document describes the validated models (generated from the description) and the batch limits."""

from __future__ import annotations

from ride_duration.schema import FIELDS


def test_openapi_document_lists_every_described_field_and_limit(client, offline_settings) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1") and "ride_duration" in doc["info"]["title"]
    ride = doc["components"]["schemas"]["Request"]
    assert set(ride["properties"]) == {f.name for f in FIELDS} | {"request_id", "id"}
    assert set(ride["required"]) == {f.name for f in FIELDS if f.required}
    assert ride["additionalProperties"] is True  # UNKNOWN_FIELDS=keep (the default) serves other fields
    assert ride["properties"]["PULocationID"]["maximum"] == 265
    batch = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1]
    assert batch["maxItems"] == offline_settings.max_batch_rows
    assert {"200", "400", "413", "415"} <= set(doc["paths"]["/predict"]["post"]["responses"])
    assert doc["components"]["schemas"]["Label"]["properties"]["duration"]["exclusiveMinimum"] == 0
    answer = doc["components"]["schemas"]["Prediction"]
    assert {"prediction", "duration"} <= set(answer["required"]) and "probabilities" not in answer["properties"]


def test_openapi_declares_the_bearer_token_when_one_is_required(settings_with) -> None:
    from prediction_service import create_app

    doc = create_app(settings_with(monitoring_token="t")).test_client().get("/openapi.json").get_json()
    assert doc["paths"]["/feedback"]["post"]["security"] == [{"bearerAuth": []}]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_openapi_forbids_other_fields_only_when_they_are_rejected(settings_with) -> None:
    from prediction_service import create_app

    for policy, allowed in (("keep", True), ("ignore", True), ("reject", False)):
        doc = create_app(settings_with(unknown_fields=policy)).test_client().get("/openapi.json").get_json()
        assert doc["components"]["schemas"]["Request"]["additionalProperties"] is allowed, policy
