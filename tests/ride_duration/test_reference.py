"""A reference for a model trained elsewhere: its own predictions, labelled with its own version."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression

from monitoring_core.reference import reference_model_version
from prediction_service.model_loader import feature_frame, load_model
from ride_duration.reference import main
from ride_duration.schema import DESCRIPTION, FIELD_NAMES
from ride_duration.synthetic import generate_trips
from ride_duration.tlc import to_green_layout


def course_pickle(path: Path) -> Path:
    frame = generate_trips(2000, seed=3)
    dicts = [
        {"PU_DO": f"{p}_{d}", "trip_distance": t}
        for p, d, t in zip(frame["PULocationID"], frame["DOLocationID"], frame["trip_distance"], strict=True)
    ]
    dv = DictVectorizer()
    path.write_bytes(pickle.dumps((dv, LinearRegression().fit(dv.fit_transform(dicts), frame["duration"]))))
    return path


def test_a_reference_from_a_tlc_file_carries_the_models_predictions_and_version(tmp_path: Path) -> None:
    model_path = course_pickle(tmp_path / "lin_reg.bin")
    month = tmp_path / "green_tripdata_2021-03.parquet"
    pq.write_table(pa.Table.from_pandas(to_green_layout(generate_trips(600, seed=9)), preserve_index=False), str(month))
    out = tmp_path / "reference.parquet"
    assert main(["--model", str(model_path), "--data", str(month), "--rows", "500", "--out", str(out)]) == 0
    reference = pd.read_parquet(out)
    model = load_model(model_path, DESCRIPTION)
    assert len(reference) == 500 and reference_model_version(out) == model.version
    rows = reference[list(FIELD_NAMES)].to_dict(orient="records")
    assert list(reference["prediction"]) == model.predict(feature_frame(DESCRIPTION, rows)).predictions
    assert reference["passenger_count"].isna().any()  # the file's missing values stay missing


def test_a_model_that_cannot_load_is_one_error_line(tmp_path: Path, capsys) -> None:
    assert main(["--model", str(tmp_path / "nowhere.bin")]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot load the model at {tmp_path / 'nowhere.bin'}")
