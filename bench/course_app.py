"""The bare baseline of issue #23: a course-style Flask app around a course-style pipeline, nothing else.

`MODEL_PATH=course.pkl gunicorn -w 2 bench.course_app:app` (gunicorn's default sync workers). The
pickle is the course's `(DictVectorizer, LinearRegression)` tuple that `python -m bench prediction_load`
fits on the taxi reference rows; the same file is served by the prediction service (`full_course` mode)
through its loader, so the two modes answer the very same model. No validation, metrics or logging.
"""

import os
import pickle

from flask import Flask, jsonify, request

with open(os.environ["MODEL_PATH"], "rb") as f_in:
    dv, model = pickle.load(f_in)  # noqa: S301 - the bench's own file
app = Flask(__name__)


@app.post("/predict")
def predict():
    """Predict one ride's duration from whatever JSON object was sent."""
    ride = request.get_json()
    duration = float(model.predict(dv.transform([ride]))[0])
    return jsonify({"duration": duration})


@app.get("/health")
def health():
    """Answer the benchmark's readiness poll."""
    return {"status": "ok"}
