"""The simulator knows no model: no module imports the taxi example or names one of its columns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "usage_simulation"
TAXI_WORDS = ("ride_duration", "PULocationID", "DOLocationID", "trip_distance", "passenger_count", "borough", "lpep_")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_module_names_no_taxi_column(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"^\s*(from|import)\s+ride_duration", text, re.M), f"{path.name} imports ride_duration"
    # Docstrings may use the taxi as an example; code may not. Strip comments and string literals first.
    code = re.sub(r'("""|\'\'\').*?\1|"[^"\n]*"|\'[^\'\n]*\'|#.*', "", text, flags=re.S)
    found = [w for w in TAXI_WORDS if w in code]
    assert not found, f"{path.name} names {found} in its code"
