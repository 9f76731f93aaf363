"""Build the reference dataset for any model the service serves (yours too): rides, their target, its predictions.

`python -m ride_duration.train` writes a reference for the model it trains. For a model trained
elsewhere (an MLflow model, the course's `lin_reg.bin`) the metrics service needs a reference of
that model's own predictions, labelled with its version, or prediction drift and the reference's
`model_version` describe the wrong model:

`python -m ride_duration.reference --model lin_reg.bin --data green_tripdata_2021-03.parquet --out reference.parquet`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from monitoring_core.reference import write_reference
from prediction_service.model_loader import ModelLoadError, ServedModel, feature_frame, load_model
from ride_duration import tlc
from ride_duration.schema import DESCRIPTION, FIELD_NAMES, PREDICTION, TARGET
from ride_duration.synthetic import generate_trips

DEFAULT_ROWS = 5_000


def build_reference(model: ServedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame`'s features and target with `model`'s prediction of every row."""
    reference = frame[[*FIELD_NAMES, TARGET]].reset_index(drop=True).copy()
    reference[PREDICTION] = model.predict(feature_frame(DESCRIPTION, reference.to_dict(orient="records"))).predictions
    return reference


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, predict the rides with the model and write the reference."""
    parser = argparse.ArgumentParser(description="Write a reference dataset with a model's own predictions.")
    parser.add_argument(
        "--model", type=Path, required=True, help="a model file: our artifact, an MLflow folder, the course's pickle"
    )
    parser.add_argument("--data", type=Path, help="a TLC green-taxi parquet file (default: synthetic trips)")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rides in the reference (sampled)")
    parser.add_argument("--seed", type=int, default=42, help="seed for sampling or generating rides")
    parser.add_argument("--out", type=Path, default=Path("reference.parquet"), help="where to write the reference")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.model, DESCRIPTION)
        if args.data is not None:
            frame = tlc.load_tlc(args.data)
            frame = frame.sample(min(args.rows, len(frame)), random_state=args.seed)
        else:
            frame = generate_trips(args.rows, seed=args.seed)
        reference = build_reference(model, frame)
    except (ModelLoadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_reference(reference, args.out, model.version)
    print(f"wrote {args.out}: {len(reference)} rows, model version {model.version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
