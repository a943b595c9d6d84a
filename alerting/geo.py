"""Local time of day in the district and plausibility of position fixes (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.geo import distance_m

# Beijing time is UTC+8 all year (China observes no daylight saving).
LOCAL_UTC_OFFSET_MS = 8 * 3600 * 1000


def local_hour(ts_ms: int, offset_ms: int = LOCAL_UTC_OFFSET_MS) -> int:
    """Hour of day (0-23) in the district's local time for an epoch-ms timestamp."""
    return int(((ts_ms + offset_ms) // 3_600_000) % 24)


def is_night(ts_ms: int, start_h: int = 21, end_h: int = 6) -> bool:
    """True between `start_h` and `end_h` local time."""
    hour = local_hour(ts_ms)
    return hour >= start_h or hour < end_h


# A receiver without a fix often reports 0, 0 ("null island"); no elder lives there.
NULL_ISLAND_DEG = 1e-6
# An elder of a district care service is within a walk or a short ride of home; a fix farther
# than this from home and from every registered centre is a receiver fault, not a journey.
MAX_PLAUSIBLE_RANGE_M = 50_000.0
# A 68 % accuracy radius above 2 km says the receiver has no real fix (assisted-GPS wearables
# report cell-tower estimates of this order when they fall back).
MAX_PLAUSIBLE_HACC_M = 2_000.0


def implausible_fix(
    lat: float,
    lon: float,
    hacc_m: float | None,
    anchors: Iterable[tuple[float, float]],
    range_m: float = MAX_PLAUSIBLE_RANGE_M,
) -> str | None:
    """Why a fix cannot be where the wearer is, or None when it is plausible.

    Args:
        lat: WGS84 degrees.
        lon: WGS84 degrees.
        hacc_m: reported horizontal accuracy, metres (None when not reported).
        anchors: places the wearer is known to be near (home first, then care centres).
        range_m: how far from every anchor a fix may be.
    """
    if abs(lat) < NULL_ISLAND_DEG and abs(lon) < NULL_ISLAND_DEG:
        return "null island"
    if hacc_m is not None and hacc_m > MAX_PLAUSIBLE_HACC_M:
        return f"accuracy {hacc_m:.0f} m"
    any_anchor = False
    for a_lat, a_lon in anchors:  # home first: one distance for almost every fix
        if distance_m(a_lat, a_lon, lat, lon) <= range_m:
            return None
        any_anchor = True
    return f"more than {range_m / 1000:.0f} km from home and every centre" if any_anchor else None
