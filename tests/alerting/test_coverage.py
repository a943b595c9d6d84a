"""Coverage report against brute force, and `eldercare coverage` end to end."""

from __future__ import annotations

import json
import random
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
    render_svg,
    render_text,
)
from alerting.kpi import CenterLoad
from gateway import CareCenter, Elder, Fleet, fleet_to_dict
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
    assert len(groups["gaps"]) == len(report.gaps)
    pink = [r for r in groups["centres"] if r.get("fill") == "#d81b60"]
    assert [r.find(f"{SVG}title").text for r in pink] == [fleet.care_centers[0].id]  # type: ignore[union-attr]
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
    report = coverage_report(fleet)
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
