"""Coverage report against brute force, and `eldercare coverage` end to end."""

from __future__ import annotations

import json
import random
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.coverage import (
    BBox,
    cells_csv,
    coverage_report,
    grid_cells,
    render_text,
)
from alerting.coverage_map import HOME_BARE, PINK, render_svg
from alerting.kpi import CenterLoad
from gateway import CareCenter, Elder, Fleet, fleet_to_dict
from gateway.datum import district_outline_wgs84, outline_rings
from gateway.geo import distance_m
from tests.alerting.test_kpi import T0, add_alert, add_center, db, run_cli

__all__ = ["db"]  # the fixture, shared with test_kpi
SVG = "{http://www.w3.org/2000/svg}"


def random_fleet(n_centers: int, n_elders: int, seed: int) -> Fleet:
    """Centres and homes scattered over Xicheng's bounding box (data/README.md)."""
    rng = random.Random(seed)

    def point() -> tuple[float, float]:
        return rng.uniform(39.863, 39.975), rng.uniform(116.310, 116.400)

    centers = tuple(
        CareCenter(f"cc-{i:03d}", f"Centre {i}", *point(), rng.randint(1, 4), rng.uniform(0.3, 3))
        for i in range(n_centers)
    )
    elders = tuple(Elder(f"el-{i:06d}", f"Elder {i}", *point()) for i in range(n_elders))
    return Fleet(centers, elders)


def district_fleet(seed: int) -> Fleet:
    """The simulator's fleet when it is available, else a random one."""
    try:
        from firmware_sim import generate_fleet
    except ImportError:
        return random_fleet(12, 400, seed)
    fleet: Fleet = generate_fleet(400, seed)
    return fleet


def covered_brute(fleet: Fleet, lat: float, lon: float) -> bool:
    return any(
        distance_m(lat, lon, c.lat, c.lon) <= c.coverage_radius_m for c in fleet.care_centers
    )


@settings(max_examples=40, deadline=None)
@given(n_centers=st.integers(1, 25), seed=st.integers(0, 2**32), cell_km=st.floats(0.5, 2.0))
def test_report_agrees_with_brute_force(n_centers: int, seed: int, cell_km: float) -> None:
    fleet = random_fleet(n_centers, 60, seed)
    report = coverage_report(fleet, cell_km)
    homes = [covered_brute(fleet, e.home_lat, e.home_lon) for e in fleet.elders]
    assert report.homes_total == 60 and report.homes_covered == sum(homes)
    assert len(report.cells) == report.rows * report.cols
    for cell in report.cells:
        nearest = min(distance_m(cell.lat, cell.lon, c.lat, c.lon) for c in fleet.care_centers)
        assert cell.distance_m == pytest.approx(nearest, abs=1e-6)
        assert cell.covered == covered_brute(fleet, cell.lat, cell.lon)
    assert {(c.row, c.col) for c in report.gaps} == {
        (c.row, c.col) for c in report.cells if not covered_brute(fleet, c.lat, c.lon)
    }
    # Every home is counted once, in a cell whose square holds it.
    assert sum(c.homes for c in report.cells) == 60
    assert sum(c.uncovered_homes for c in report.cells) == 60 - sum(homes)
    dlat = report.cells[report.cols].lat - report.cells[0].lat if report.rows > 1 else 1.0
    dlon = report.cells[1].lon - report.cells[0].lon if report.cols > 1 else 1.0
    for e in fleet.elders:
        assert any(
            c.homes
            and abs(e.home_lat - c.lat) <= dlat / 2 * (1 + 1e-9)
            and abs(e.home_lon - c.lon) <= dlon / 2 * (1 + 1e-9)
            for c in report.cells
        )


def test_inhabited_gaps_are_told_apart() -> None:
    centre = CareCenter("cc-001", "Centre", 39.90, 116.35)
    near = Elder("el-000001", "Near", 39.9005, 116.3505)
    far = Elder("el-000002", "Far", 39.93, 116.39)
    report = coverage_report(Fleet((centre,), (near, far)))
    (gap,) = report.inhabited_gaps
    assert (gap.homes, gap.uncovered_homes) == (1, 1)
    assert distance_m(gap.lat, gap.lon, far.home_lat, far.home_lon) < 800
    assert sum(c.homes for c in report.cells) == 2
    assert "Cells with homes outside every coverage circle: 1" in render_text(report)


def test_grid_cells_are_cell_km_apart_and_cover_the_box() -> None:
    box = BBox(39.863, 116.310, 39.975, 116.400)  # Xicheng: 7.1 km x 11.2 km
    rows, cols, centres = grid_cells(box, 1.0)
    assert (rows, cols) == (13, 8)
    (lat0, lon0), (lat1, lon1) = centres[0], centres[1]
    assert distance_m(lat0, lon0, lat1, lon1) == pytest.approx(1000, rel=1e-3)
    assert distance_m(lat0, lon0, *centres[cols]) == pytest.approx(1000, rel=1e-6)
    assert centres[-1][0] + 0.0045 >= box.north and centres[-1][1] + 0.006 >= box.east


def test_svg_map_draws_every_centre_home_and_gap() -> None:
    fleet = district_fleet(3)
    loads = [CenterLoad(fleet.care_centers[0].id, 1, 2, 0)]
    report = coverage_report(fleet, 1.0, loads=loads)
    root = ET.fromstring(render_svg(report, fleet))
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    assert len(groups["centres"]) == len(fleet.care_centers)
    assert len(groups["coverage"]) == len(fleet.care_centers)
    assert len(groups["homes"]) == len(fleet.elders)
    assert len(groups["gaps"]) + len(groups["empty-gaps"]) == len(report.gaps)
    assert len(groups["gaps"]) == len(report.inhabited_gaps)
    pink = [r for r in groups["centres"] if r.get("fill") == PINK]
    c0 = fleet.care_centers[0]
    assert [r.find(f"{SVG}title").text for r in pink] == [f"{c0.name} ({c0.id})"]  # type: ignore[union-attr]
    assert all(e.name not in ET.tostring(root, encoding="unicode") for e in fleet.elders)


def test_coverage_command(
    db: psycopg.Connection[Any],
    schema_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet = random_fleet(6, 200, seed=11)
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet_to_dict(fleet)))
    busy = fleet.care_centers[2]
    add_center(db, busy.id, capacity=busy.capacity)
    now_ms = int(db.execute("SELECT extract(epoch FROM now()) * 1000").fetchone()[0])  # type: ignore[index]
    for i in range(busy.capacity + 1):
        add_alert(db, f"al-{i}", busy.id, now_ms - 3600_000)
    add_alert(db, "al-old", fleet.care_centers[3].id, T0 - 10**9, over_capacity=True)
    svg, csv = tmp_path / "map.svg", tmp_path / "cells.csv"
    argv = ["coverage", str(path), "--svg", str(svg), "--csv", str(csv)]
    assert run_cli([*argv, "--database-url", schema_url]) == 0
    out = capsys.readouterr().out
    report = coverage_report(fleet, outline=outline_rings(district_outline_wgs84()))
    share = 100 * report.homes_covered / 200
    assert f"Homes within coverage: {report.homes_covered} / 200 ({share:.1f} %)" in out
    assert f"Gap cells (outside every coverage circle): {len(report.gaps)} of" in out
    assert "Centres over capacity in the period: 1" in out
    assert f"  {busy.id}: peak {busy.capacity + 1} active" in out
    assert csv.read_text() == cells_csv(report)
    assert ET.parse(svg).getroot().tag == f"{SVG}svg"
    # Without a database the report still runs and says the load is unknown.
    assert run_cli([*argv, "--no-db"]) == 0
    assert "Centres over capacity: unknown" in capsys.readouterr().out


def test_coverage_command_refuses_a_bad_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fleet.json"
    path.write_text('{"care_centers": [{"id": "cc-1"}]}')
    assert run_cli(["coverage", str(path), "--no-db", "--svg", str(tmp_path / "m.svg")]) == 2
    assert "care_centers[0].lat" in capsys.readouterr().err
    assert not (tmp_path / "m.svg").exists()


# A 2 km x 2 km square district around (39.90, 116.35), as WGS-84 (lat, lon) ring.
SQUARE = [(39.891, 116.338), (39.891, 116.362), (39.909, 116.362), (39.909, 116.338)]


def square_fleet() -> Fleet:
    """One centre in the square's south-west; one covered home, one bare home inside the
    square, one bare home outside it; the north-east of the square is empty and uncovered."""
    centre = CareCenter("cc-001", "Centre West", 39.894, 116.342, 3, 1.0)
    elders = (
        Elder("el-000001", "Near", 39.8945, 116.3425),
        Elder("el-000002", "Bare", 39.8945, 116.3595),
        Elder("el-000003", "Away", 39.92, 116.375),
    )
    return Fleet((centre,), elders)


def test_land_outside_the_district_is_not_a_gap() -> None:
    fleet = square_fleet()
    report = coverage_report(fleet, 1.0, outline=[SQUARE])
    no_outline = coverage_report(fleet, 1.0, bbox=report.bbox)
    # Without an outline every uncovered cell of the box is a gap; with it, empty cells outside
    # the district are not, and only cells with homes outside coverage are red.
    assert len(no_outline.gaps) > len(report.gaps)
    for cell in report.gaps:
        assert cell.district_share > 0 or cell.homes
    outside_empty = [c for c in report.cells if c.district_share == 0 and not c.homes]
    assert outside_empty and not set(outside_empty) & set(report.gaps)
    red = {(c.lat, c.lon) for c in report.inhabited_gaps}
    assert len(red) == 2  # the bare home inside and the one outside the square
    assert all(c.uncovered_homes == 0 for c in report.empty_gaps)
    assert report.empty_gaps  # the square's empty north-east
    inside = [c for c in report.cells if c.district_share == 1.0]
    assert inside and all(
        SQUARE[0][0] < c.lat < SQUARE[2][0] and SQUARE[0][1] < c.lon < SQUARE[1][1] for c in inside
    )
    text = render_text(report)
    assert f"of {len(report.district_cells)} district cells" in text


def _rects(group: ET.Element) -> list[tuple[float, float, float, float]]:
    return [
        (
            float(r.get("x", 0)),
            float(r.get("y", 0)),
            float(r.get("width", 0)),
            float(r.get("height", 0)),
        )
        for r in group.iter(f"{SVG}rect")
    ]


def test_svg_map_on_the_outline_with_legend_scale_and_names() -> None:
    fleet = square_fleet()
    report = coverage_report(fleet, 1.0, outline=[SQUARE])
    svg = render_svg(report, fleet, title="Square")
    root = ET.fromstring(svg)
    width, height = float(root.get("width", 0)), float(root.get("height", 0))
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    # Red and grey cells sit under the district clip; the outline is drawn.
    assert groups["gaps"].get("clip-path") == "url(#district)"
    assert groups["empty-gaps"].get("clip-path") == "url(#district)"
    assert root.find(f".//{SVG}clipPath[@id='district']") is not None
    assert root.find(f".//{SVG}path[@id='boundary']") is not None
    # Every cell is clipped to the district, the red one outside it too; its home still shows.
    assert len(_rects(groups["gaps"])) == 2
    assert sum(c.get("fill") == HOME_BARE for c in groups["homes"]) == 2
    assert "1 home(s) lie outside the district outline" in svg
    assert len(_rects(groups["empty-gaps"])) == len(report.empty_gaps)
    # No cell is cut at the canvas edge.
    for group in ("gaps", "empty-gaps", "grid"):
        for x, y, w, h in _rects(groups[group]):
            assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
    # Legend names each class; nothing calls a gap "over capacity".
    legend = " ".join(t.text or "" for t in groups["legend"].iter(f"{SVG}text"))
    assert "cell with homes outside coverage (2)" in legend
    assert f"no homes at risk ({len(report.empty_gaps)})" in legend
    assert "centre over capacity in the period (0)" in legend
    assert "over capacity" not in "".join(
        t.text or ""
        for t in root.iter(f"{SVG}text")
        if t not in list(groups["legend"].iter(f"{SVG}text"))
    )
    # Centre names on the map.
    labels = [t.text for t in groups["centre-labels"].iter(f"{SVG}text")]
    assert labels == ["Centre West"]
    # The scale bar agrees with the drawn coverage circle: radius in px / radius in m.
    (circle,) = groups["coverage"].iter(f"{SVG}circle")
    px_per_m = float(circle.get("r", 0)) / fleet.care_centers[0].coverage_radius_m
    bar = _rects(groups["scale"])
    bar_px = sum(w for _, _, w, _ in bar)
    bar_label = [t.text for t in groups["scale"].iter(f"{SVG}text")][-1] or ""
    bar_m = float(bar_label.split()[0]) * (1000 if bar_label.endswith("km") else 1)
    assert bar_px / bar_m == pytest.approx(px_per_m, rel=0.01)


def test_coverage_command_draws_the_png_of_the_svg(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = square_fleet()
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet_to_dict(fleet)))
    svg, png = tmp_path / "map.svg", tmp_path / "map.png"
    argv = ["coverage", str(path), "--no-db", "--svg", str(svg), "--png", str(png)]
    assert run_cli(argv) == 0
    assert f"Map written to {png}" in capsys.readouterr().out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    root = ET.parse(svg).getroot()
    assert (width, height) == (int(root.get("width", 0)), int(root.get("height", 0)))
