"""GCJ-02 <-> WGS-84: the offset datum of Chinese map data and the GPS datum devices report.

Chinese web-map data (the district outline included) is published in GCJ-02, a WGS-84
position shifted by a non-linear, deterministic offset; in Beijing the shift is about
0.006 deg east and 0.0014 deg north, roughly 550 m. The forward transform below is the public
one, as documented and implemented by eviltransform (googollee/eviltransform, MIT licence) and
coordtransform (wandergis/coordtransform, MIT licence): the Krasovsky 1940 ellipsoid
(a = 6378245 m, e^2 = 0.00669342162296594323) and the two published trigonometric series in
degrees offset from (105 E, 35 N). The inverse has no closed form; it is solved by fixed-point
iteration until the forward image of the estimate matches the GCJ-02 input to better than
1e-9 deg (about 0.1 mm), far inside the 0.5 m the platform needs.

Outside mainland China GCJ-02 equals WGS-84; the rough bounding box used by every public
implementation decides that.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

# Krasovsky 1940 ellipsoid, the reference of the GCJ-02 series (eviltransform, coordtransform).
_A_M = 6378245.0
_EE = 0.00669342162296594323

# The district outline shipped in the package (GCJ-02 as published).
BUNDLED_OUTLINE = "data/xicheng-boundary.geojson"

# Inverse iteration: stop when the forward image is within this many degrees of the target.
_INVERSE_TOLERANCE_DEG = 1e-9
_INVERSE_MAX_ITERATIONS = 30


def out_of_china(lat: float, lon: float) -> bool:
    """Whether a point lies outside the box where GCJ-02 applies (then GCJ-02 == WGS-84)."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _series_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _series_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def _offset_deg(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 minus WGS-84 at a WGS-84 point, (dlat, dlon) in degrees."""
    dlat = _series_lat(lon - 105.0, lat - 35.0)
    dlon = _series_lon(lon - 105.0, lat - 35.0)
    rad_lat = math.radians(lat)
    magic = 1.0 - _EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A_M * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A_M / sqrt_magic * math.cos(rad_lat) * math.pi)
    return dlat, dlon


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """Convert a WGS-84 point to GCJ-02.

    Args:
        lat: WGS-84 latitude, degrees.
        lon: WGS-84 longitude, degrees.

    Returns:
        ``(lat, lon)`` in GCJ-02 degrees; unchanged outside China.
    """
    if out_of_china(lat, lon):
        return lat, lon
    dlat, dlon = _offset_deg(lat, lon)
    return lat + dlat, lon + dlon


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """Convert a GCJ-02 point to WGS-84 by fixed-point iteration of the forward transform.

    Args:
        lat: GCJ-02 latitude, degrees.
        lon: GCJ-02 longitude, degrees.

    Returns:
        ``(lat, lon)`` in WGS-84 degrees whose GCJ-02 image is within 1e-9 deg of the input;
        unchanged outside China.
    """
    if out_of_china(lat, lon):
        return lat, lon
    w_lat, w_lon = lat, lon
    for _ in range(_INVERSE_MAX_ITERATIONS):
        g_lat, g_lon = wgs84_to_gcj02(w_lat, w_lon)
        err_lat, err_lon = g_lat - lat, g_lon - lon
        if abs(err_lat) < _INVERSE_TOLERANCE_DEG and abs(err_lon) < _INVERSE_TOLERANCE_DEG:
            break
        w_lat, w_lon = w_lat - err_lat, w_lon - err_lon
    return w_lat, w_lon


def ring_gcj02_to_wgs84(ring: list[list[float]]) -> list[list[float]]:
    """Convert a GeoJSON ring of ``[lon, lat]`` GCJ-02 positions to WGS-84 positions."""
    out: list[list[float]] = []
    for lon, lat, *_ in ring:
        w_lat, w_lon = gcj02_to_wgs84(lat, lon)
        out.append([round(w_lon, 7), round(w_lat, 7)])
    return out


def _bundled_outline() -> dict[str, Any]:
    raw = resources.files("gateway").joinpath(BUNDLED_OUTLINE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(raw)
    return data


def outline_to_wgs84(collection: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of (Multi)Polygons with every position in WGS-84.

    Features whose ``properties.datum`` is ``"GCJ-02"`` are converted; others are taken as
    WGS-84 already (the GeoJSON default, RFC 7946 §4). Multipolygons stay multipolygons.
    """
    features = []
    for feature in collection.get("features", []):
        props = dict(feature.get("properties") or {})
        geom = feature["geometry"]
        polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        if props.get("datum") == "GCJ-02":
            polys = [[ring_gcj02_to_wgs84(ring) for ring in poly] for poly in polys]
        props["datum"] = "WGS-84"
        features.append(
            {
                "type": "Feature",
                "properties": props,
                "geometry": {"type": "MultiPolygon", "coordinates": polys},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def district_outline_wgs84(path: Path | None = None) -> dict[str, Any]:
    """The district outline as a WGS-84 GeoJSON FeatureCollection of MultiPolygons.

    Args:
        path: A GeoJSON file; by default the Xicheng outline bundled with the package (GCJ-02,
            adcode 110102, as published for Chinese web maps), converted to WGS-84.
    """
    data = json.loads(path.read_text(encoding="utf-8")) if path else _bundled_outline()
    return outline_to_wgs84(data)


def outline_rings(collection: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """Every ring of a FeatureCollection as ``(lat, lon)`` tuples (outer and holes alike)."""
    return [
        [(float(p[1]), float(p[0])) for p in ring]
        for feature in collection["features"]
        for poly in feature["geometry"]["coordinates"]
        for ring in poly
    ]
