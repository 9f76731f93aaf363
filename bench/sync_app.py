"""The naive monitored service the benchmark compares against: both monitoring writes inside the request.

Course-style: predict, insert the document into MongoDB, POST the row to the metrics service, then
answer; the client waits for all three. Served by gunicorn's default sync workers
(`gunicorn -w N bench.sync_app:app`) with MODEL_PATH, MONGODB_URI, MONGODB_DATABASE,
EVIDENTLY_SERVICE_URL and MODEL_NAME from the environment. Benchmark only: it validates nothing.
"""

import os
import uuid
from datetime import UTC, datetime

import requests
from flask import Flask, jsonify, request
from pymongo import MongoClient

from monitoring_core.documents import prediction_document, predictions_collection
from monitoring_core.records import forwarded_row
from ride_duration.model import load_model
from ride_duration.schema import DESCRIPTION, FIELD_NAMES

model = load_model(os.environ["MODEL_PATH"])
model_name = os.environ.get("MODEL_NAME", "ride_duration")
collection = predictions_collection(MongoClient(os.environ["MONGODB_URI"]), os.environ["MONGODB_DATABASE"])
iterate_url = f"{os.environ['EVIDENTLY_SERVICE_URL']}/iterate/{model_name}"
session = requests.Session()
app = Flask(__name__)


@app.post("/predict")
def predict():
    """Predict, log to MongoDB and forward to the metrics service, all before answering."""
    ride = request.get_json()
    values = {name: ride.get(name) for name in FIELD_NAMES}
    duration = float(model.predict_rides([values])[0])
    request_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    outputs = {DESCRIPTION.prediction_column: duration}
    collection.insert_one(prediction_document(request_id, now, model_name, model.version, values, outputs))
    session.post(iterate_url, json=[forwarded_row(request_id, now, model.version, values, outputs)], timeout=2)
    return jsonify({"request_id": request_id, "duration": duration, "model_version": model.version})


@app.get("/health")
def health():
    """Answer the benchmark's readiness poll."""
    return {"status": "ok"}
