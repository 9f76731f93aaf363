"""Train the ride-duration model and write the model artifact and reference dataset.

`python -m ride_duration.train [--source synthetic|tlc] [--rows N] [--seed N] [--out-dir DIR]`
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import root_mean_squared_error
from sklearn.pipeline import make_pipeline

from monitoring_core.model_folder import DESCRIPTION_FILE
from monitoring_core.paths import DEFAULT_MODEL_DIR, MODEL_FILE, REFERENCE_FILE
from monitoring_core.reference import write_reference
from ride_duration import tlc
from ride_duration.features import baseline_features, frame_features
from ride_duration.model import RideDurationModel, fingerprint, save_model
from ride_duration.schema import FIELD_NAMES, PREDICTION, TARGET
from ride_duration.synthetic import generate_trips

DEFAULT_ROWS = 30_000
REFERENCE_ROWS = 5_000


def _step(message: str) -> None:
    print(f"[train] {message}", flush=True)


def load_source(source: str, rows: int, seed: int, month: str, data_dir: Path) -> pd.DataFrame:
    """Return cleaned rides (API fields plus `duration`) from the chosen source."""
    if source == "synthetic":
        return generate_trips(rows, seed=seed)[[*FIELD_NAMES, TARGET]]
    frame = tlc.load_tlc(tlc.download(month, data_dir))
    if len(frame) > rows:
        frame = frame.sample(rows, random_state=seed)
    return frame.reset_index(drop=True)


def split(frame: pd.DataFrame, seed: int, val_share: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rides into training and held-out rows, reproducibly."""
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(len(frame) * (1 - val_share))
    return frame.iloc[order[:cut]].reset_index(drop=True), frame.iloc[order[cut:]].reset_index(drop=True)


def fit(train: pd.DataFrame):
    """Fit the production pipeline: zone pair, distance (per borough), hour of day -> minutes."""
    pipeline = make_pipeline(DictVectorizer(), Ridge(alpha=1.0))
    pipeline.fit(frame_features(train), train[TARGET].to_numpy())
    return pipeline


def fit_baseline(train: pd.DataFrame):
    """Fit the course's baseline (zone pair and distance, linear regression) for comparison."""
    pipeline = make_pipeline(DictVectorizer(), LinearRegression())
    pipeline.fit(frame_features(train, baseline_features), train[TARGET].to_numpy())
    return pipeline


def train(source: str, rows: int, seed: int, out_dir: Path, month: str, data_dir: Path) -> dict:
    """Train, evaluate and write `model.pkl` and `reference.parquet`; return the metrics."""
    started = time.perf_counter()
    _step(f"loading {rows} rows from {source}")
    frame = load_source(source, rows, seed, month, data_dir)
    train_rows, held_out = split(frame, seed)
    _step(f"fitting on {len(train_rows)} rows")
    pipeline = fit(train_rows)
    baseline = fit_baseline(train_rows)
    rmse = float(root_mean_squared_error(held_out[TARGET], pipeline.predict(frame_features(held_out))))
    baseline_rmse = float(
        root_mean_squared_error(held_out[TARGET], baseline.predict(frame_features(held_out, baseline_features)))
    )
    _step(f"validation RMSE {rmse:.3f} min (course baseline {baseline_rmse:.3f} min) on {len(held_out)} rows")

    version = f"{source}-{fingerprint(pipeline)}"
    info = {"source": source, "rows": len(frame), "seed": seed, "rmse": rmse, "baseline_rmse": baseline_rmse}
    model = RideDurationModel(pipeline=pipeline, version=version, info=info)
    reference = held_out.head(REFERENCE_ROWS).copy()
    reference[PREDICTION] = model.predict_frame(reference)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, out_dir / MODEL_FILE)
    write_reference(reference, out_dir / REFERENCE_FILE, version)
    description = out_dir / DESCRIPTION_FILE
    if not description.exists() or not description.samefile(DEFAULT_MODEL_DIR / DESCRIPTION_FILE):
        # A complete model folder wherever it is written: the service serves MODEL_DIR=out_dir as it is.
        shutil.copyfile(DEFAULT_MODEL_DIR / DESCRIPTION_FILE, description)
    _step(f"wrote {out_dir / MODEL_FILE} (version {version}) and {out_dir / REFERENCE_FILE} ({len(reference)} rows)")
    _step(f"done in {time.perf_counter() - started:.1f}s")
    return {"version": version, **info}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and train."""
    parser = argparse.ArgumentParser(description="Train the ride-duration model and write its artifacts.")
    parser.add_argument("--source", choices=("synthetic", "tlc"), default="synthetic", help="where rides come from")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rides to use (sampled from TLC files)")
    parser.add_argument("--seed", type=int, default=42, help="seed for generation, sampling and the split")
    parser.add_argument(
        "--out-dir", type=Path, default=DEFAULT_MODEL_DIR, help="the model folder model and reference go into"
    )
    parser.add_argument("--month", default="2021-01", help="TLC month (YYYY-MM) with --source tlc")
    parser.add_argument("--data-dir", type=Path, default=tlc.DEFAULT_DATA_DIR, help="where TLC files are kept")
    args = parser.parse_args(argv)
    try:
        train(args.source, args.rows, args.seed, args.out_dir, args.month, args.data_dir)
    except (tlc.DownloadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
