"""The reference dataset file: rows with their predictions, and the version of the model that made them.

The model version travels in the parquet file's own metadata, so the metrics service and the
batch flow can label what they export without unpickling (or even having) the model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

MODEL_VERSION_KEY = b"monitoring.model_version"
# The key the first release wrote (when the stack knew one model): still read, never written.
LEGACY_VERSION_KEYS = (b"ride" + b"_duration.model_version",)
UNKNOWN_VERSION = "unknown"


def read_reference(path: Path | str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read reference rows from parquet with numpy and object columns, whichever pandas dtypes wrote them.

    A frame saved with pyarrow-backed dtypes (`convert_dtypes(dtype_backend="pyarrow")`, `read_csv(...,
    dtype_backend="pyarrow")`) is read back with them, and code written for numpy columns breaks on them
    (`%` is not implemented for `double[pyarrow]`: the draft crashed with a traceback).
    """
    return numpy_backed(pd.read_parquet(path, columns=columns))


def numpy_backed(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with pyarrow-backed and string-dtype columns as numpy / object columns (missing: NaN, None)."""
    arrow = [c for c in frame.columns if isinstance(frame[c].dtype, pd.ArrowDtype)]
    strings = [c for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype)]
    if not arrow and not strings:
        return frame
    import pyarrow as pa

    frame = frame.copy()
    if arrow:
        # Arrow's own conversion, as for a plain parquet read: ints with nulls become floats, strings objects.
        plain = pa.Table.from_pandas(frame[arrow], preserve_index=False).to_pandas(ignore_metadata=True)
        for column in arrow:
            frame[column] = plain[column].set_axis(frame.index)
    for column in strings:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def write_reference(frame: pd.DataFrame, path: Path, model_version: str) -> None:
    """Write the reference rows to `path` as parquet, with the model version in the file's metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), MODEL_VERSION_KEY: model_version.encode()})
    pq.write_table(table, str(path))


def reference_model_version(path: Path) -> str:
    """Return the model version a reference file was written with, or "unknown" (older or foreign files)."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(str(path)).metadata or {}
    except (OSError, ValueError):
        return UNKNOWN_VERSION
    raw = metadata.get(MODEL_VERSION_KEY) or next((metadata[k] for k in LEGACY_VERSION_KEYS if k in metadata), None)
    return raw.decode() if raw else UNKNOWN_VERSION
