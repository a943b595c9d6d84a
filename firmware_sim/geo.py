"""Local flat-earth geometry for a district of a few kilometres (pure)."""

from __future__ import annotations

import math

# WGS84 metres per degree of latitude near 40° N; longitude scales with cos(lat).
M_PER_DEG_LAT = 111_035.0
M_PER_DEG_LON_EQUATOR = 111_320.0


def m_per_deg_lon(lat: float) -> float:
    """Metres per degree of longitude at latitude `lat`."""
    return M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat))


def offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    """Return the point `east_m`, `north_m` away from (`lat`, `lon`)."""
    return lat + north_m / M_PER_DEG_LAT, lon + east_m / m_per_deg_lon(lat)


def to_local(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    """Return (east_m, north_m) of (`lat`, `lon`) relative to (`lat0`, `lon0`)."""
    return (lon - lon0) * m_per_deg_lon(lat0), (lat - lat0) * M_PER_DEG_LAT
