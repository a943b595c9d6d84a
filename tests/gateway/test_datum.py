"""GCJ-02 <-> WGS-84: published reference pairs, round trips and a fix inside the outline."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.datum import (
    district_outline_wgs84,
    gcj02_to_wgs84,
    out_of_china,
    outline_rings,
    ring_gcj02_to_wgs84,
    wgs84_to_gcj02,
)
from gateway.geo import distance_m

# (wgs_lat, wgs_lon, gcj_lat, gcj_lon): the Beijing pair of eviltransform's test suite
# (googollee/eviltransform, python/test.py) and coordtransform's (wandergis/coordtransform).
REFERENCE_PAIRS = [
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
    (39.915, 116.404, 39.91640428150164, 116.41024449916938),
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
]


def _point_in_ring(lat: float, lon: float, ring: list[list[float]]) -> bool:
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _outline_gcj02() -> list[list[float]]:
    raw = resources.files("gateway").joinpath("data/xicheng-boundary.geojson").read_text("utf-8")
    ring: list[list[float]] = json.loads(raw)["features"][0]["geometry"]["coordinates"][0][0]
    return ring


@pytest.mark.parametrize("pair", REFERENCE_PAIRS, ids=["beijing", "beijing-2", "shanghai"])
def test_forward_matches_published_pairs(pair: tuple[float, float, float, float]) -> None:
    wgs_lat, wgs_lon, gcj_lat, gcj_lon = pair
    lat, lon = wgs84_to_gcj02(wgs_lat, wgs_lon)
    assert lat == pytest.approx(gcj_lat, abs=1e-9)
    assert lon == pytest.approx(gcj_lon, abs=1e-9)


@pytest.mark.parametrize("pair", REFERENCE_PAIRS, ids=["beijing", "beijing-2", "shanghai"])
def test_inverse_recovers_published_wgs84(pair: tuple[float, float, float, float]) -> None:
    wgs_lat, wgs_lon, gcj_lat, gcj_lon = pair
    lat, lon = gcj02_to_wgs84(gcj_lat, gcj_lon)
    assert distance_m(lat, lon, wgs_lat, wgs_lon) < 0.5


def test_beijing_offset_is_about_550_m() -> None:
    lat, lon = wgs84_to_gcj02(39.92, 116.36)
    assert 450 < distance_m(39.92, 116.36, lat, lon) < 650
    assert lon > 116.36 and lat > 39.92  # GCJ-02 lies east and north of WGS-84 here


@settings(max_examples=300, deadline=None)
@given(lat=st.floats(18.0, 53.0), lon=st.floats(74.0, 134.0))
def test_round_trip_within_half_a_metre(lat: float, lon: float) -> None:
    g_lat, g_lon = wgs84_to_gcj02(lat, lon)
    w_lat, w_lon = gcj02_to_wgs84(g_lat, g_lon)
    assert distance_m(lat, lon, w_lat, w_lon) < 0.5


def test_outside_china_is_identity() -> None:
    assert out_of_china(51.5, -0.12)
    assert wgs84_to_gcj02(51.5, -0.12) == (51.5, -0.12)
    assert gcj02_to_wgs84(51.5, -0.12) == (51.5, -0.12)


@pytest.mark.parametrize(
    ("lat", "lon", "name"),
    [
        # WGS-84 positions (OpenStreetMap) of landmarks inside Xicheng.
        (39.9388, 116.3390, "Beijing Zoo"),
        (39.8995, 116.3375, "Baiyun Temple"),
        (39.8843, 116.3600, "Niujie Mosque"),
        (39.9251, 116.3836, "Beihai Park"),
        (39.8765, 116.3746, "Taoranting Park"),
    ],
)
def test_wgs84_fix_lands_inside_converted_outline(lat: float, lon: float, name: str) -> None:
    wgs_ring = ring_gcj02_to_wgs84(_outline_gcj02())
    assert _point_in_ring(lat, lon, wgs_ring), name


def test_fix_near_west_edge_needs_the_conversion() -> None:
    """A fix 150 m inside the district's west edge falls outside the unconverted outline."""
    gcj, wgs = _outline_gcj02(), ring_gcj02_to_wgs84(_outline_gcj02())
    lat = 39.91
    # The west edge of the converted outline at this latitude (edge crossing, by bisection).
    lo, hi = 116.30, 116.36
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if _point_in_ring(lat, mid, wgs) else (mid, hi)
    fix_lon = hi + 150 / distance_m(lat, 116.0, lat, 117.0)
    assert _point_in_ring(lat, fix_lon, wgs)
    assert not _point_in_ring(lat, fix_lon, gcj)
    # The same fix converted to GCJ-02 falls inside the published (GCJ-02) outline.
    assert _point_in_ring(*wgs84_to_gcj02(lat, fix_lon), gcj)


def test_converted_outline_moves_west_and_south() -> None:
    gcj = _outline_gcj02()
    wgs = ring_gcj02_to_wgs84(gcj)
    for (g_lon, g_lat), (w_lon, w_lat) in zip(gcj, wgs, strict=True):
        assert 0.005 < g_lon - w_lon < 0.007
        assert 0.0005 < g_lat - w_lat < 0.002


def test_bundled_outline_as_wgs84_geojson() -> None:
    collection = district_outline_wgs84()
    (feature,) = collection["features"]
    assert feature["properties"]["datum"] == "WGS-84"
    assert feature["properties"]["adcode"] == 110102
    (ring,) = outline_rings(collection)
    assert ring == [(lat, lon) for lon, lat in ring_gcj02_to_wgs84(_outline_gcj02())]
    # Shoelace area on a local tangent plane: the README's 50.2 km² for the published outline.
    m_lat = distance_m(39.9, 116.3, 40.9, 116.3)
    m_lon = distance_m(39.92, 116.3, 39.92, 117.3)
    pts = [(lon * m_lon, lat * m_lat) for lat, lon in ring]
    area = abs(
        sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True))
    )
    assert area / 2 / 1e6 == pytest.approx(50.2, abs=0.4)
