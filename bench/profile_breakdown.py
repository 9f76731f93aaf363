"""Bucket a py-spy profile of a prediction_service worker into the stages of a /predict request.

Record one under load (the numbers in docs/prediction_service.md "CPU budget per request" came from this):
    wrk -t2 -c16 -d50s -s predict.lua http://127.0.0.1:PORT &     # the script bench_prediction_load writes
    py-spy record --gil -p WORKER_PID -d 40 -r 100 -f raw -o profile.txt
    python -m bench.profile_breakdown profile.txt
`--gil` keeps only samples of the thread holding the GIL, i.e. the Python CPU time of the worker.
"""

from __future__ import annotations

import collections
import sys

# (substring of a frame, stage): within a request the innermost matching frame decides.
REQUEST_STAGES = [
    ("gunicorn/", "server"),
    ("werkzeug/", "server"),
    ("flask/", "server"),
    ("predict (prediction_service/api.py", "handler (other)"),
    ("read_json", "parse"),
    ("validate_items", "validate"),
    ("_duplicate_ids", "validate"),
    ("_fields (prediction_service/api.py", "features"),
    ("ride_features", "features"),
    ("Pipeline.predict", "predict"),
    ("ServedModel.predict", "predict"),  # predict and predict_rows: the model call and its inputs
    ("feature_frame", "features"),
    ("_plausible", "predict"),
    ("prediction_document", "build records"),
    ("forwarded_row", "build records"),
    ("uuid4", "build records"),
    ("utc_now_ms", "build records"),
    ("prometheus_client/", "metrics"),
    ("observe (prediction_service/app.py", "metrics"),
    ("record_predictions", "enqueue"),
    ("submit (prediction_service", "enqueue"),
    ("WriteAheadLog.append", "enqueue"),
    ("jsonify", "serialise"),
    ("json_response", "serialise"),
    ("json/provider", "serialise"),
]
THREADS = [
    ("MongoSink._run", "background: MongoDB writer"),
    ("Forwarder._run", "background: forwarder"),
    ("DependencyProbe", "background: health probe"),
    ("PeriodicExecutor", "background: pymongo monitor"),
]


def stage_of(frames: list[str]) -> str:
    """Return the stage one sampled stack belongs to."""
    for marker, name in THREADS:
        if any(marker in frame for frame in frames):
            return name
    if not any("Flask.__call__" in frame for frame in frames):
        return "server"  # the worker's own loop: accept, poll, keep-alive
    stage = "server"
    for frame in frames:
        for marker, name in REQUEST_STAGES:
            if marker in frame:
                stage = name
    return stage


def breakdown(lines: list[str]) -> collections.Counter:
    """Return samples per stage from py-spy's raw (collapsed stack) output."""
    counts: collections.Counter = collections.Counter()
    for line in lines:
        stack, _, samples = line.rstrip().rpartition(" ")
        if stack:
            counts[stage_of(stack.split(";"))] += int(samples)
    return counts


def main(argv: list[str]) -> int:
    """Print each stage's share of the samples."""
    with open(argv[0]) as source:
        counts = breakdown(source.readlines())
    total = sum(counts.values())
    for name, samples in counts.most_common():
        print(f"{name:<30} {samples:>7} {100 * samples / total:5.1f}%")
    print(f"{'total':<30} {total:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
