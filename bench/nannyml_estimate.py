"""Run NannyML's DLE or CBPE on parquet files; run with the bench-only venv's python, not the project's.

`python nannyml_estimate.py SPEC.json`: SPEC names the reference parquet file, the method (dle |
cbpe), the columns, and analysis sets (a parquet file, its chunk size, an output file). The estimator
is fitted once at NannyML's defaults; each set's result (one row per chunk: estimate, sampling error,
NannyML's own bounds) is written as parquet, the fit and estimate seconds to SPEC's `timing`.
Standalone on purpose: it imports nothing from this repository.
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
    with open(spec_path) as handle:
        spec = json.load(handle)
    reference = pd.read_parquet(spec["reference"])
    categories = {}
    for column in spec.get("categorical", []):
        reference[column] = reference[column].astype("category")  # integer codes: no string arrays
        categories[column] = reference[column].cat.categories
    metrics = METRICS[spec["method"]]
    if spec["method"] == "dle":
        estimator = nml.DLE(
            feature_column_names=spec["features"],
            y_pred=spec["prediction"],
            y_true=spec["target"],
            metrics=list(metrics.values()),
        )
    else:
        estimator = nml.CBPE(
            y_pred_proba=spec["probabilities"],
            y_pred=spec["prediction"],
            y_true=spec["target"],
            problem_type="classification_multiclass",
            metrics=list(metrics.values()),
        )
    started = time.perf_counter()
    estimator.fit(reference)
    timing = {"fit_seconds": time.perf_counter() - started, "analyses": []}
    # Fitted once; each analysis set is judged in chunks of its window size (chunk = window).
    for analysis_spec in spec["analyses"]:
        analysis = pd.read_parquet(analysis_spec["path"])
        for column, known in categories.items():
            analysis[column] = pd.Categorical(analysis[column], categories=known)
        estimator.chunker = nml.chunk.SizeBasedChunker(chunk_size=analysis_spec["chunk_size"])
        started = time.perf_counter()
        result = estimator.estimate(analysis).filter(period="analysis").to_df()
        seconds = time.perf_counter() - started
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
        pd.concat(rows).to_parquet(analysis_spec["out"])
        timing["analyses"].append({"estimate_seconds": seconds, "chunks": len(result)})
    with open(spec["timing"], "w") as handle:
        json.dump(timing, handle)


if __name__ == "__main__":
    main(sys.argv[1])
