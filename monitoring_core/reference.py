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
