"""What a newcomer's reference may be: pyarrow-backed dtypes, and a target that does not fit the task given.

A reference saved with pyarrow-backed pandas dtypes is read as the numpy one: same draft, same check.

pandas 2 writes `convert_dtypes(dtype_backend="pyarrow")` frames (and `read_csv(..., dtype_backend="pyarrow")`
ones) with their dtypes in the parquet metadata, and `read_parquet` restores them: the draft crashed on
`double[pyarrow] % 1` with a traceback. Every reader of a reference goes through `read_reference`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_wine

from monitoring_core.description import Task, parse_description
from monitoring_core.draft import draft
from monitoring_core.reference import read_reference
from monitoring_core.reference_check import check_reference


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = load_wine(as_frame=True)
    frame = data.frame[["alcohol", "proline", "hue"]].copy()
    frame["cellar"] = np.arange(len(frame)) % 4 + 1
    frame["organic"] = np.arange(len(frame)) % 3 == 0
    frame["region"] = np.where(np.arange(len(frame)) % 2 == 0, "north", "south")
    frame["cultivar"] = np.array(["barolo", "grignolino", "barbera"])[data.target]
    frame["prediction"] = frame["cultivar"]
    frame.loc[5, "hue"] = np.nan
    # Each column's own type, pyarrow-backed (convert_dtypes would also make whole floats integers).
    arrow = pa.Table.from_pandas(frame, preserve_index=False).to_pandas(types_mapper=pd.ArrowDtype)
    arrow["region"] = frame["region"].astype("string[pyarrow]")  # pandas' own string dtype too
    return frame, arrow


def test_a_pyarrow_backed_reference_drafts_and_checks_as_the_numpy_one(frames, tmp_path: Path) -> None:
    plain, arrow = frames
    assert isinstance(arrow["hue"].dtype, pd.ArrowDtype)
    arrow.to_parquet(tmp_path / "arrow.parquet", index=False)
    plain.to_parquet(tmp_path / "plain.parquet", index=False)
    read = read_reference(tmp_path / "arrow.parquet")
    assert not any(isinstance(d, (pd.ArrowDtype, pd.StringDtype)) for d in read.dtypes)
    assert read["hue"].dtype == np.float64 and np.isnan(read.loc[5, "hue"]) and read["region"].dtype == object
    raw = draft(read, "wine", Task.CLASSIFICATION, "cultivar")
    assert raw == draft(read_reference(tmp_path / "plain.parquet"), "wine", Task.CLASSIFICATION, "cultivar")
    check_reference(parse_description(raw), read, "arrow.parquet")  # raises DescriptionError when it does not fit


@pytest.mark.parametrize(
    ("task", "target", "message"),
    [
        # A string target under regression was a TypeError traceback ('>=' between str and int).
        (Task.REGRESSION, "cultivar", "the target 'cultivar' is not a number (e.g. 'barolo'): a regression target is"),
        # A continuous target under classification drafted one class per distinct value (178 here).
        (Task.CLASSIFICATION, "hue", "the target 'hue' holds fractional numbers (78 distinct values, e.g. 1.04)"),
    ],
    ids=["text as regression", "fractions as classes"],
)
def test_the_draft_names_a_target_that_does_not_fit_the_task(frames, task, target, message, tmp_path, capsys) -> None:
    from monitoring_core.draft import main

    plain, _ = frames
    plain.to_parquet(tmp_path / "reference.parquet", index=False)
    assert main([str(tmp_path / "reference.parquet"), "--name", "wine", "--task", task.value, "--target", target]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"draft: {tmp_path / 'reference.parquet'}: {message}") and "Traceback" not in error
