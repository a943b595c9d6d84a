"""District map: the GCJ-02 outline converted to WGS-84, so device fixes land where they are."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from alerting.coverage import point_in_rings
from tests.dashboard.conftest import DashFleet
from tests.dashboard.telemetry_rows import add_band

ClientAs = Callable[..., TestClient]

# WGS-84 positions of public landmarks (as GPS reports them). The zoo lies in Xicheng near its
# western edge; Tiananmen gate in Dongcheng just east of Xicheng's eastern edge. Both are
# about 160 m from the converted boundary, while the GCJ-02 shift is about 550 m to the
# north-east: the raw outline puts the gate inside the district.
BEIJING_ZOO = (39.9397, 116.3330)
TIANANMEN_GATE = (39.9072, 116.3911)
XIDAN = (39.9070, 116.3685)


def _rings(collection: dict[str, Any], kind: str | None = None) -> list[list[tuple[float, float]]]:
    return [
        [(p[1], p[0]) for p in ring]
        for f in collection["features"]
        if kind is None or f["properties"].get("kind") == kind
        for poly in (
            f["geometry"]["coordinates"]
            if f["geometry"]["type"] == "MultiPolygon"
            else [f["geometry"]["coordinates"]]
        )
        for ring in poly
    ]


@pytest.fixture
def district(client_as: ClientAs) -> dict[str, Any]:
    got = client_as("family").get("/api/v1/map/district")
    assert got.status_code == 200
    body: dict[str, Any] = got.json()
    return body


def test_a_device_fix_at_a_known_place_lands_inside_the_converted_outline(
    district: dict[str, Any], client_as: ClientAs, dash_fleet: DashFleet, schema_url: str
) -> None:
    band = dash_fleet.device(dash_fleet.elders[0], "band")
    with psycopg.connect(schema_url, autocommit=True) as conn:
        add_band(conn, band, [(int(time.time() * 1000), *BEIJING_ZOO, 70, 0)])
    fix = client_as("dispatcher").get(f"/api/v1/devices/{band}").json()
    outline = _rings(district, "district")
    assert point_in_rings(fix["lat"], fix["lon"], outline)
    assert point_in_rings(*XIDAN, outline)
    assert not point_in_rings(*TIANANMEN_GATE, outline)


def test_the_raw_gcj02_outline_would_misplace_them() -> None:
    raw = json.loads(
        resources.files("gateway").joinpath("data/xicheng-boundary.geojson").read_text("utf-8")
    )
    assert raw["features"][0]["properties"]["datum"] == "GCJ-02"
    rings = _rings(raw)
    assert point_in_rings(*TIANANMEN_GATE, rings)


def test_grid_of_1_km_cells_covers_the_district(district: dict[str, Any]) -> None:
    cells = [f for f in district["features"] if f["properties"]["kind"] == "grid_cell"]
    area_km2 = sum(c["properties"]["district_share"] for c in cells)
    assert area_km2 == pytest.approx(50.2, abs=2.5)  # the outline encloses about 50.2 km²
    assert 50 <= len(cells) <= 90
    assert all(0 < c["properties"]["district_share"] <= 1 for c in cells)
    (ring,) = cells[0]["geometry"]["coordinates"]
    side_ns_m = (ring[2][1] - ring[1][1]) * 111_195
    assert side_ns_m == pytest.approx(1000, rel=0.01)


def test_map_needs_a_login(app_client: TestClient) -> None:
    assert app_client.get("/api/v1/map/district").status_code == 401
