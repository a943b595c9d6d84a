"""The district map's base layer: the outline in WGS-84 and the 1 km grid over it."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from fastapi import APIRouter

from alerting.coverage import M_PER_DEG_LAT, grid_cells, point_in_rings, rings_bbox
from dashboard.deps import CurrentUser
from dashboard.routes.elders import AUTH
from gateway.datum import district_outline_wgs84, outline_rings

router = APIRouter(prefix="/api/v1/map", tags=["map"])

CELL_KM = 1.0  # the 1 km² planning grid of the coverage report
_SAMPLES = 4  # per side: a cell is on the map when one of 16 sample points is in the district


def _cell_steps(south: float, north: float) -> tuple[float, float]:
    dlat = CELL_KM * 1000 / M_PER_DEG_LAT
    return dlat, dlat / math.cos(math.radians((south + north) / 2))


def _cell_feature(
    row: int, col: int, lat: float, lon: float, dlat: float, dlon: float, share: float
) -> dict[str, Any]:
    s, n, w, e = lat - dlat / 2, lat + dlat / 2, lon - dlon / 2, lon + dlon / 2
    ring = [[round(x, 7), round(y, 7)] for x, y in ((w, s), (e, s), (e, n), (w, n), (w, s))]
    return {
        "type": "Feature",
        "properties": {
            "kind": "grid_cell",
            "row": row,
            "col": col,
            "district_share": share,
        },
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


@lru_cache(maxsize=1)
def district_map() -> dict[str, Any]:
    """The outline (converted from GCJ-02) and the grid cells holding district land."""
    outline = district_outline_wgs84()
    rings = outline_rings(outline)
    box = rings_bbox(rings)
    _rows, cols, centres = grid_cells(box, CELL_KM)
    dlat, dlon = _cell_steps(box.south, box.north)
    offsets = [(i + 0.5) / _SAMPLES - 0.5 for i in range(_SAMPLES)]
    features: list[dict[str, Any]] = []
    for f in outline["features"]:
        features.append({**f, "properties": {**f["properties"], "kind": "district"}})
    for i, (lat, lon) in enumerate(centres):
        hits = sum(
            point_in_rings(lat + a * dlat, lon + b * dlon, rings) for a in offsets for b in offsets
        )
        if hits:
            share = hits / _SAMPLES**2
            features.append(_cell_feature(i // cols, i % cols, lat, lon, dlat, dlon, share))
    return {"type": "FeatureCollection", "features": features}


@router.get("/district", responses=AUTH)
def district(user: CurrentUser) -> dict[str, Any]:
    """GeoJSON (RFC 7946, WGS-84): the district outline (`kind` "district", converted from the
    GCJ-02 published outline) and the 1 km grid cells touching it (`kind` "grid_cell",
    `district_share` the share of the cell inside the district)."""
    return district_map()
