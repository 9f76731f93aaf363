"""Run NannyML's DLE or CBPE on parquet files; run with the bench-only venv's python, not the project's.

`python nannyml_estimate.py SPEC.json`: SPEC names the reference and analysis parquet files, the
method (dle | cbpe), the columns and the chunk size; the result (one row per chunk: estimate,
sampling error, NannyML's own bounds) is written as parquet to SPEC's `out`, with the fit and
estimate seconds in `out`.json. Standalone on purpose: it imports nothing from this repository.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import nannyml as nml  # noqa: E402
import pandas as pd  # noqa: E402

# Our metric name -> NannyML's.
METRICS = {"dle": {"mae": "mae", "rmse": "rmse"}, "cbpe": {"accuracy": "accuracy", "f1_macro": "f1"}}


def main(spec_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    reference = pd.read_parquet(spec["reference"])
    analysis = pd.read_parquet(spec["analysis"])
    for column in spec.get("categorical", []):
        reference[column] = reference[column].astype(str).astype("category")
        analysis[column] = pd.Categorical(analysis[column].astype(str), categories=reference[column].cat.categories)
    metrics = METRICS[spec["method"]]
    if spec["method"] == "dle":
        estimator = nml.DLE(
            feature_column_names=spec["features"],
            y_pred=spec["prediction"],
            y_true=spec["target"],
            metrics=list(metrics.values()),
            chunk_size=spec["chunk_size"],
        )
    else:
        estimator = nml.CBPE(
            y_pred_proba=spec["probabilities"],
            y_pred=spec["prediction"],
            y_true=spec["target"],
            problem_type="classification_multiclass",
            metrics=list(metrics.values()),
            chunk_size=spec["chunk_size"],
        )
    started = time.perf_counter()
    estimator.fit(reference)
    fitted = time.perf_counter()
    result = estimator.estimate(analysis).filter(period="analysis").to_df()
    estimated = time.perf_counter()
    rows = []
    for ours, theirs in metrics.items():
        part = result[theirs]
        rows.append(
            pd.DataFrame(
                {
                    "chunk": range(len(part)),
                    "metric": ours,
                    "value": part["value"].to_numpy(),
                    "sampling_error": part["sampling_error"].to_numpy(),
                    "low": part["lower_confidence_boundary"].to_numpy(),
                    "high": part["upper_confidence_boundary"].to_numpy(),
                }
            )
        )
    pd.concat(rows).to_parquet(spec["out"])
    chunks = len(result)
    timing = {"fit_seconds": fitted - started, "estimate_seconds": estimated - fitted, "chunks": chunks}
    with open(spec["out"] + ".json", "w") as handle:
        json.dump(timing, handle)


if __name__ == "__main__":
    main(sys.argv[1])
