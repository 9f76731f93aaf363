"""The metrics service knows no particular model: no import of the taxi example, none of its names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ride_duration.schema import DESCRIPTION

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted((REPO / "evidently_service").glob("*.py")) + [
    REPO / "monitoring_core" / name for name in ("prepare.py", "draft.py", "reference_data.py")
]
TAXI_NAMES = ("ride_duration", *DESCRIPTION.feature_names, DESCRIPTION.target_column, "borough", "minutes")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_taxi_name_in_the_source(path: Path) -> None:
    text = path.read_text()
    found = [name for name in TAXI_NAMES if re.search(rf"\b{re.escape(name)}\b", text)]
    assert found == [], f"{path.name} names {found}"
