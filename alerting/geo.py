"""Local time of day in the district (pure)."""

from __future__ import annotations

# Beijing time is UTC+8 all year (China observes no daylight saving).
LOCAL_UTC_OFFSET_MS = 8 * 3600 * 1000


def local_hour(ts_ms: int, offset_ms: int = LOCAL_UTC_OFFSET_MS) -> int:
    """Hour of day (0-23) in the district's local time for an epoch-ms timestamp."""
    return int(((ts_ms + offset_ms) // 3_600_000) % 24)


def is_night(ts_ms: int, start_h: int = 21, end_h: int = 6) -> bool:
    """True between `start_h` and `end_h` local time."""
    hour = local_hour(ts_ms)
    return hour >= start_h or hour < end_h
