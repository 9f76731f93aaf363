"""Zone ids map to the TLC lookup's boroughs."""

from __future__ import annotations

from collections import Counter

import pytest

from ride_duration.zones import BOROUGHS, borough_of, zones_in


def test_borough_sizes_match_the_tlc_lookup() -> None:
    counts = Counter(borough_of(z) for z in range(1, 266))
    assert counts == {
        "Queens": 69,
        "Manhattan": 69,
        "Brooklyn": 61,
        "Bronx": 43,
        "Staten Island": 20,
        "Unknown": 2,
        "EWR": 1,
    }
    assert set(counts) == set(BOROUGHS)


@pytest.mark.parametrize(
    ("zone", "borough"),
    [
        (1, "EWR"),
        (74, "Manhattan"),
        (132, "Queens"),
        (97, "Brooklyn"),
        (168, "Bronx"),
        (5, "Staten Island"),
        (265, "Unknown"),
    ],
)
def test_known_zones(zone, borough) -> None:
    assert borough_of(zone) == borough
    assert zone in zones_in(borough)


@pytest.mark.parametrize("value", [0, 266, None, "x", 3.7])
def test_anything_else_is_unknown_or_truncated(value) -> None:
    assert borough_of(value) in BOROUGHS
