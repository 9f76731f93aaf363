"""TLC taxi zones: the borough of every zone id, for segments and the generator."""

from __future__ import annotations

from functools import lru_cache

from ride_duration.schema import N_ZONES

# Zone ids per borough, transcribed from the TLC taxi zone lookup table.
_BOROUGH_ZONES: dict[str, tuple[int, ...]] = {
    "EWR": (1,),
    "Manhattan": (4, 12, 13, 24, 41, 42, 43, 45, 48, 50, 68, 74, 75, 79, 87, 88, 90, 100, 103, 104, 105, 107,
                  113, 114, 116, 120, 125, 127, 128, 137, 140, 141, 142, 143, 144, 148, 151, 152, 153, 158, 161,
                  162, 163, 164, 166, 170, 186, 194, 202, 209, 211, 224, 229, 230, 231, 232, 233, 234, 236, 237,
                  238, 239, 243, 244, 246, 249, 261, 262, 263),
    "Bronx": (3, 18, 20, 31, 32, 46, 47, 51, 58, 59, 60, 69, 78, 81, 94, 119, 126, 136, 147, 159, 167, 168,
              169, 174, 182, 183, 184, 185, 199, 200, 208, 212, 213, 220, 235, 240, 241, 242, 247, 248, 250,
              254, 259),
    "Staten Island": (5, 6, 23, 44, 84, 99, 109, 110, 115, 118, 156, 172, 176, 187, 204, 206, 214, 221, 245,
                      251),
    "Unknown": (264, 265),
}
BROOKLYN = (11, 14, 17, 21, 22, 25, 26, 29, 33, 34, 35, 36, 37, 39, 40, 49, 52, 54, 55, 61, 62, 63, 65, 66,
            67, 71, 72, 76, 77, 80, 85, 89, 91, 97, 106, 108, 111, 112, 123, 133, 149, 150, 154, 155, 165, 177,
            178, 181, 188, 189, 190, 195, 210, 217, 222, 225, 227, 228, 255, 256, 257)
_BOROUGH_ZONES["Brooklyn"] = BROOKLYN

BOROUGHS: tuple[str, ...] = ("Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "EWR", "Unknown")


@lru_cache(maxsize=1)
def _zone_to_borough() -> dict[int, str]:
    mapping = {zone: borough for borough, zones in _BOROUGH_ZONES.items() for zone in zones}
    # Queens holds every zone not listed above: it has the most zones left over.
    return {zone: mapping.get(zone, "Queens") for zone in range(1, N_ZONES + 1)}


def borough_of(zone_id: object) -> str:
    """Return the borough of a TLC zone id, or "Unknown" for anything else."""
    try:
        return _zone_to_borough().get(int(zone_id), "Unknown")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "Unknown"


def zones_in(borough: str) -> tuple[int, ...]:
    """Return the zone ids of one borough, in ascending order."""
    return tuple(z for z, b in _zone_to_borough().items() if b == borough)
