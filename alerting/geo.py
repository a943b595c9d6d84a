"""Great-circle distances and local time of day (pure)."""

from __future__ import annotations

import math

# Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M = 6_371_008.8
# Beijing time is UTC+8 all year (China observes no daylight saving).
LOCAL_UTC_OFFSET_MS = 8 * 3600 * 1000


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance between two WGS84 points, metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def local_hour(ts_ms: int, offset_ms: int = LOCAL_UTC_OFFSET_MS) -> int:
    """Hour of day (0-23) in the district's local time for an epoch-ms timestamp."""
    return int(((ts_ms + offset_ms) // 3_600_000) % 24)


def is_night(ts_ms: int, start_h: int = 21, end_h: int = 6) -> bool:
    """True between `start_h` and `end_h` local time."""
    hour = local_hour(ts_ms)
    return hour >= start_h or hour < end_h
