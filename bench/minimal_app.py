"""The simplest service a user could write around the same model artifact: no validation, metrics or logging.

The `minimal` mode of `python -m bench prediction_load` serves it under gunicorn's default sync
workers: `MODEL_PATH=... gunicorn -w N bench.minimal_app:app`. It is the honest baseline for what
the prediction service's validation and monitoring cost.
"""

import os

from flask import Flask, jsonify, request

from ride_duration.model import load_model

model = load_model(os.environ["MODEL_PATH"])
app = Flask(__name__)


@app.post("/predict")
def predict():
    """Predict one ride's duration from whatever JSON object was sent."""
    duration = float(model.predict_rides([request.get_json()])[0])
    return jsonify({"duration": duration, "model_version": model.version})


@app.get("/health")
def health():
    """Answer the benchmark's readiness poll."""
    return {"status": "ok"}
