"""Coverage report of a district: homes covered, distance to the nearest centre per cell, gaps.

Pure: a fleet (and, optionally, the centres' recent load) in; figures, a CSV and a hand-written
SVG map out. Cells are squares of `cell_km` a side on an equirectangular grid over the
district's bounding box; a cell is a gap when its centre lies outside every coverage circle.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape

from alerting.kpi import CenterLoad
from alerting.routing import CenterIndex
from gateway import Fleet
from gateway.geo import EARTH_RADIUS_M

M_PER_DEG_LAT = EARTH_RADIUS_M * math.pi / 180
# Above this many columns the per-cell table no longer fits a terminal: summary + CSV instead.
MAX_TABLE_COLS = 40


@dataclass(frozen=True, slots=True)
class BBox:
    """A latitude/longitude box, degrees."""

    south: float
    west: float
    north: float
    east: float


@dataclass(frozen=True, slots=True)
class Cell:
    """One grid cell: its centre, the nearest care centre and whether it is covered."""

    row: int  # 0 = southernmost
    col: int  # 0 = westernmost
    lat: float
    lon: float
    nearest_center_id: str
    distance_m: float
    covered: bool
    homes: int = 0  # elders' homes inside the cell
    uncovered_homes: int = 0  # of those, homes outside every coverage circle


@dataclass(frozen=True, slots=True)
class CoverageReport:
    """Everything `eldercare coverage` prints and draws."""

    bbox: BBox
    cell_km: float
    rows: int
    cols: int
    cells: tuple[Cell, ...]
    homes_total: int
    homes_covered: int
    home_points: tuple[tuple[float, float, bool], ...]  # (lat, lon, covered), no identities
    loads: tuple[CenterLoad, ...]

    @property
    def home_share(self) -> float | None:
        """Share of elders' homes inside at least one coverage circle."""
        return self.homes_covered / self.homes_total if self.homes_total else None

    @property
    def gaps(self) -> tuple[Cell, ...]:
        """Cells whose centre no centre covers."""
        return tuple(c for c in self.cells if not c.covered)

    @property
    def inhabited_gaps(self) -> tuple[Cell, ...]:
        """Cells holding homes outside every coverage circle: where the policy of a care
        centre within one square kilometre of every home fails."""
        return tuple(c for c in self.cells if c.uncovered_homes)

    @property
    def over_capacity(self) -> tuple[CenterLoad, ...]:
        """Centres that were over capacity in the load period."""
        return tuple(load for load in self.loads if load.over_capacity)


def fleet_bbox(fleet: Fleet) -> BBox:
    """The box around every home and centre of the fleet."""
    lats = [e.home_lat for e in fleet.elders] + [c.lat for c in fleet.care_centers]
    lons = [e.home_lon for e in fleet.elders] + [c.lon for c in fleet.care_centers]
    if not lats:
        raise ValueError("the fleet has neither homes nor care centres")
    return BBox(min(lats), min(lons), max(lats), max(lons))


def _cell_steps(bbox: BBox, cell_km: float) -> tuple[float, float]:
    """A cell's size in degrees of latitude and longitude at the box's mid latitude."""
    if cell_km <= 0:
        raise ValueError("cell_km must be positive")
    mid = math.radians((bbox.south + bbox.north) / 2)
    dlat = cell_km * 1000 / M_PER_DEG_LAT
    return dlat, cell_km * 1000 / (M_PER_DEG_LAT * max(math.cos(mid), 1e-6))


def grid_cells(bbox: BBox, cell_km: float) -> tuple[int, int, list[tuple[float, float]]]:
    """Rows, columns and cell centres (south to north, west to east) covering `bbox`."""
    dlat, dlon = _cell_steps(bbox, cell_km)
    rows = max(1, math.ceil((bbox.north - bbox.south) / dlat))
    cols = max(1, math.ceil((bbox.east - bbox.west) / dlon))
    centres = [
        (bbox.south + (r + 0.5) * dlat, bbox.west + (c + 0.5) * dlon)
        for r in range(rows)
        for c in range(cols)
    ]
    return rows, cols, centres


def _homes_per_cell(
    box: BBox, cell_km: float, rows: int, cols: int, homes: Sequence[tuple[float, float]]
) -> dict[tuple[int, int], int]:
    """How many homes fall in each (row, col) of the grid `grid_cells` lays over `box`."""
    dlat, dlon = _cell_steps(box, cell_km)
    counts: dict[tuple[int, int], int] = {}
    for lat, lon in homes:
        r = min(rows - 1, max(0, int((lat - box.south) / dlat)))
        c = min(cols - 1, max(0, int((lon - box.west) / dlon)))
        counts[(r, c)] = counts.get((r, c), 0) + 1
    return counts


def coverage_report(
    fleet: Fleet,
    cell_km: float = 1.0,
    bbox: BBox | None = None,
    loads: Sequence[CenterLoad] = (),
) -> CoverageReport:
    """Compute the coverage of a fleet's homes and district by its care centres.

    Args:
        fleet: The fleet (centres and homes).
        cell_km: Side of a grid cell, km (1 km gives 1 km² cells).
        bbox: The district's box; by default the box around every home and centre.
        loads: Recent per-centre load, to list the centres over capacity.

    Raises:
        ValueError: for a fleet without centres, or a bad cell size.
    """
    if not fleet.care_centers:
        raise ValueError("the fleet has no care centres")
    box = bbox or fleet_bbox(fleet)
    index = CenterIndex(fleet.care_centers)
    rows, cols, centres = grid_cells(box, cell_km)
    dist, idx = index.nearest(centres, 1)
    covered = index.covered(centres)
    cells = tuple(
        Cell(i // cols, i % cols, lat, lon, index.centers[idx[i][0]].id, float(dist[i][0]), cov)
        for i, ((lat, lon), cov) in enumerate(zip(centres, covered, strict=True))
    )
    homes = [(e.home_lat, e.home_lon) for e in fleet.elders]
    home_cov = index.covered(homes)
    per_cell = _homes_per_cell(box, cell_km, rows, cols, homes)
    uncovered = [h for h, cov in zip(homes, home_cov, strict=True) if not cov]
    bare = _homes_per_cell(box, cell_km, rows, cols, uncovered)
    cells = tuple(
        replace(
            c,
            homes=per_cell.get((c.row, c.col), 0),
            uncovered_homes=bare.get((c.row, c.col), 0),
        )
        for c in cells
    )
    return CoverageReport(
        bbox=box,
        cell_km=cell_km,
        rows=rows,
        cols=cols,
        cells=cells,
        homes_total=len(homes),
        homes_covered=sum(home_cov),
        home_points=tuple((h[0], h[1], c) for h, c in zip(homes, home_cov, strict=True)),
        loads=tuple(loads),
    )


def cells_csv(report: CoverageReport) -> str:
    """One CSV line per cell: position, nearest centre, distance and coverage."""
    lines = ["row,col,lat,lon,nearest_center_id,distance_m,covered,homes,uncovered_homes"]
    lines += [
        f"{c.row},{c.col},{c.lat:.6f},{c.lon:.6f},{c.nearest_center_id},"
        f"{c.distance_m:.1f},{str(c.covered).lower()},{c.homes},{c.uncovered_homes}"
        for c in report.cells
    ]
    return "\n".join(lines) + "\n"


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.1f} %"


def _load_lines(report: CoverageReport, loads_known: bool) -> list[str]:
    if not loads_known:
        return ["Centres over capacity: unknown (database unavailable or not migrated)"]
    over = report.over_capacity
    return [f"Centres over capacity in the period: {len(over)}"] + [
        f"  {load.center_id}: peak {load.peak_active} active, capacity "
        f"{'?' if load.capacity is None else load.capacity}, "
        f"{load.over_capacity_alerts} alert(s) routed over capacity"
        for load in over
    ]


def render_text(report: CoverageReport, loads_known: bool = True) -> str:
    """The human-readable report printed by `eldercare coverage`."""
    b, n = report.bbox, len(report.cells)
    dists = sorted(c.distance_m for c in report.cells)
    out = [
        f"Homes within coverage: {report.homes_covered} / {report.homes_total} "
        f"({_pct(report.home_share)})",
        f"Grid: {report.cell_km:g} km cells, {report.rows} rows x {report.cols} cols = {n} cells, "
        f"{b.south:.4f}-{b.north:.4f} N, {b.west:.4f}-{b.east:.4f} E",
        f"Distance to the nearest centre per cell (m): min {dists[0]:.0f}, "
        f"median {statistics.median(dists):.0f}, p90 {dists[int(0.9 * (n - 1))]:.0f}, "
        f"max {dists[-1]:.0f}",
    ]
    if report.cols <= MAX_TABLE_COLS:
        out.append("Nearest-centre distance per cell, km (north at the top; * = gap):")
        for r in reversed(range(report.rows)):
            row = report.cells[r * report.cols : (r + 1) * report.cols]
            out.append(
                " ".join(f"{c.distance_m / 1000:4.1f}{' ' if c.covered else '*'}" for c in row)
            )
    else:
        out.append("(grid too wide for a table: use --csv for every cell)")
    out.append(f"Cells with homes outside every coverage circle: {len(report.inhabited_gaps)}")
    out += [
        f"  row {c.row:3d} col {c.col:3d}  {c.lat:.5f} N {c.lon:.5f} E  "
        f"{c.uncovered_homes} of {c.homes} home(s) uncovered"
        for c in report.inhabited_gaps[:50]
    ]
    out.append(f"Gap cells (outside every coverage circle): {len(report.gaps)} of {n}")
    out += [
        f"  row {c.row:3d} col {c.col:3d}  {c.lat:.5f} N {c.lon:.5f} E  "
        f"nearest {c.nearest_center_id} at {c.distance_m:.0f} m, {c.homes} home(s)"
        for c in report.gaps[:50]
    ]
    if len(report.gaps) > 50:
        out.append(f"  ... and {len(report.gaps) - 50} more (see --csv)")
    out += _load_lines(report, loads_known)
    return "\n".join(out) + "\n"


@dataclass(frozen=True, slots=True)
class _Projection:
    """Equirectangular lat/lon -> pixels, x scaled by cos(mid latitude) so circles stay round."""

    west: float
    north: float
    kx_m_per_deg: float
    px_per_m: float
    width_px: int
    height_px: int

    @classmethod
    def around(cls, b: BBox, margin_m: float, width_px: int) -> _Projection:
        kx = M_PER_DEG_LAT * math.cos(math.radians((b.south + b.north) / 2))
        west, east = b.west - margin_m / kx, b.east + margin_m / kx
        south, north = b.south - margin_m / M_PER_DEG_LAT, b.north + margin_m / M_PER_DEG_LAT
        px_per_m = width_px / ((east - west) * kx)
        height_px = round((north - south) * M_PER_DEG_LAT * px_per_m)
        return cls(west, north, kx, px_per_m, width_px, height_px)

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        return (
            (lon - self.west) * self.kx_m_per_deg * self.px_per_m,
            (self.north - lat) * M_PER_DEG_LAT * self.px_per_m,
        )


def _svg_gaps(report: CoverageReport, pj: _Projection) -> list[str]:
    w = report.cell_km * 1000 * pj.px_per_m
    out = ['<g id="gaps" fill="#e53935" fill-opacity="0.25" stroke="none">']
    for c in report.gaps:
        x, y = pj.xy(c.lat, c.lon)
        out.append(
            f'<rect x="{x - w / 2:.1f}" y="{y - w / 2:.1f}" width="{w:.1f}" height="{w:.1f}"/>'
        )
    return [*out, "</g>"]


def _svg_centres(report: CoverageReport, fleet: Fleet, pj: _Projection) -> list[str]:
    circles = ['<g id="coverage" fill="#1e88e5" fill-opacity="0.12" stroke="#1e88e5">']
    squares = ['<g id="centres" stroke="#000000">']
    over = {load.center_id for load in report.over_capacity}
    for cc in fleet.care_centers:
        x, y = pj.xy(cc.lat, cc.lon)
        r = cc.coverage_radius_m * pj.px_per_m
        circles.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}"/>')
        colour = "#d81b60" if cc.id in over else "#0d47a1"
        squares.append(
            f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}">'
            f"<title>{escape(cc.id)}</title></rect>"
        )
    return [*circles, "</g>", *_svg_homes(report, pj), *squares, "</g>"]


def _svg_homes(report: CoverageReport, pj: _Projection) -> list[str]:
    out = ['<g id="homes" stroke="none">']
    for lat, lon, covered in report.home_points:
        x, y = pj.xy(lat, lon)
        colour = "#43a047" if covered else "#6d4c41"
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.5" fill="{colour}"/>')
    return [*out, "</g>"]


def render_svg(report: CoverageReport, fleet: Fleet, width_px: int = 900) -> str:
    """A self-contained SVG map: gap cells, coverage circles, homes and centres.

    Drawn from the data alone (no map tiles): an equirectangular projection, which is
    accurate to well under 1 % across a district of a few kilometres.
    """
    margin_m = 1.1 * max(c.coverage_radius_m for c in fleet.care_centers)
    pj = _Projection.around(report.bbox, margin_m, width_px)
    total_h = pj.height_px + 40
    legend = (
        f"{len(fleet.care_centers)} centres (pink: over capacity), coverage circles, "
        f"homes (green covered: {_pct(report.home_share)}), red cells: "
        f"{len(report.gaps)} gaps of {len(report.cells)} x {report.cell_km:g} km cells"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_px}" height="{total_h}" '
        f'viewBox="0 0 {width_px} {total_h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width_px}" height="{total_h}" fill="#ffffff"/>',
        *_svg_gaps(report, pj),
        *_svg_centres(report, fleet, pj),
        f'<text x="8" y="{pj.height_px + 25}">{escape(legend)}</text>',
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
