"""Coverage report of a district: homes covered, distance to the nearest centre per cell, gaps.

Pure: a fleet, optionally the district outline (WGS-84) and the centres' recent load in;
figures and a CSV out (the map is drawn by `alerting.coverage_map`). Cells are squares of
`cell_km` a side on an equirectangular grid over the box around the district and the fleet; a
cell is a gap when its centre lies outside every coverage circle and it holds district land or
homes. Land outside the district is no gap: nobody is meant to be covered there.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

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
    district_share: float = 1.0  # share of the cell's area inside the district outline


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
    outline: tuple[tuple[tuple[float, float], ...], ...] = ()  # WGS-84 rings, (lat, lon)

    @property
    def home_share(self) -> float | None:
        """Share of elders' homes inside at least one coverage circle."""
        return self.homes_covered / self.homes_total if self.homes_total else None

    @property
    def district_cells(self) -> tuple[Cell, ...]:
        """Cells holding district land (all cells when no outline is given) or homes."""
        return tuple(c for c in self.cells if c.district_share > 0 or c.homes)

    @property
    def gaps(self) -> tuple[Cell, ...]:
        """District cells whose centre no centre covers."""
        return tuple(c for c in self.district_cells if not c.covered)

    @property
    def empty_gaps(self) -> tuple[Cell, ...]:
        """Gaps without a home outside coverage: uncovered land where nobody is at risk."""
        return tuple(c for c in self.gaps if not c.uncovered_homes)

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


Ring = Sequence[tuple[float, float]]


def point_in_rings(lat: float, lon: float, rings: Sequence[Ring]) -> bool:
    """Even-odd rule over every ring (so holes subtract), in plane lat/lon coordinates."""
    inside = False
    for ring in rings:
        for (lat1, lon1), (lat2, lon2) in zip(ring, [*ring[1:], ring[0]], strict=True):
            if (lat1 > lat) != (lat2 > lat) and lon < lon1 + (lat - lat1) * (lon2 - lon1) / (
                lat2 - lat1
            ):
                inside = not inside
    return inside


def rings_bbox(rings: Sequence[Ring]) -> BBox:
    """The box around every position of the rings."""
    lats = [p[0] for ring in rings for p in ring]
    lons = [p[1] for ring in rings for p in ring]
    return BBox(min(lats), min(lons), max(lats), max(lons))


def _union(a: BBox, b: BBox) -> BBox:
    return BBox(
        min(a.south, b.south), min(a.west, b.west), max(a.north, b.north), max(a.east, b.east)
    )


def _district_share(
    lat: float, lon: float, dlat: float, dlon: float, rings: Sequence[Ring], samples: int = 4
) -> float:
    """Share of a cell inside the outline, from `samples`² points spread over the cell."""
    steps = [(i + 0.5) / samples - 0.5 for i in range(samples)]
    hits = sum(point_in_rings(lat + a * dlat, lon + b * dlon, rings) for a in steps for b in steps)
    return hits / samples**2


def coverage_report(
    fleet: Fleet,
    cell_km: float = 1.0,
    bbox: BBox | None = None,
    loads: Sequence[CenterLoad] = (),
    outline: Sequence[Ring] = (),
) -> CoverageReport:
    """Compute the coverage of a fleet's homes and district by its care centres.

    Args:
        fleet: The fleet (centres and homes).
        cell_km: Side of a grid cell, km (1 km gives 1 km² cells).
        bbox: The grid's box; by default the box around the outline, every home and centre.
        loads: Recent per-centre load, to list the centres over capacity.
        outline: The district's rings in WGS-84 ``(lat, lon)``; cells outside it without
            homes are not gaps. Empty: every cell counts as district land.

    Raises:
        ValueError: for a fleet without centres, or a bad cell size.
    """
    if not fleet.care_centers:
        raise ValueError("the fleet has no care centres")
    box = bbox or fleet_bbox(fleet)
    if bbox is None and outline:
        box = _union(box, rings_bbox(outline))
    index = CenterIndex(fleet.care_centers)
    rows, cols, centres = grid_cells(box, cell_km)
    dlat, dlon = _cell_steps(box, cell_km)
    dist, idx = index.nearest(centres, 1)
    covered = index.covered(centres)
    homes = [(e.home_lat, e.home_lon) for e in fleet.elders]
    home_cov = index.covered(homes)
    per_cell = _homes_per_cell(box, cell_km, rows, cols, homes)
    uncovered = [h for h, cov in zip(homes, home_cov, strict=True) if not cov]
    bare = _homes_per_cell(box, cell_km, rows, cols, uncovered)
    cells = tuple(
        Cell(
            row=i // cols,
            col=i % cols,
            lat=lat,
            lon=lon,
            nearest_center_id=index.centers[idx[i][0]].id,
            distance_m=float(dist[i][0]),
            covered=cov,
            homes=per_cell.get((i // cols, i % cols), 0),
            uncovered_homes=bare.get((i // cols, i % cols), 0),
            district_share=_district_share(lat, lon, dlat, dlon, outline) if outline else 1.0,
        )
        for i, ((lat, lon), cov) in enumerate(zip(centres, covered, strict=True))
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
        outline=tuple(tuple(ring) for ring in outline),
    )


def cells_csv(report: CoverageReport) -> str:
    """One CSV line per cell: position, nearest centre, distance and coverage."""
    lines = [
        "row,col,lat,lon,nearest_center_id,distance_m,covered,homes,uncovered_homes,district_share"
    ]
    lines += [
        f"{c.row},{c.col},{c.lat:.6f},{c.lon:.6f},{c.nearest_center_id},"
        f"{c.distance_m:.1f},{str(c.covered).lower()},{c.homes},{c.uncovered_homes},"
        f"{c.district_share:.4f}"
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


def _table_cell(c: Cell, in_district: bool) -> str:
    if not in_district:
        return "  -  "
    return f"{c.distance_m / 1000:4.1f}{' ' if c.covered else '*'}"


def render_text(report: CoverageReport, loads_known: bool = True) -> str:
    """The human-readable report printed by `eldercare coverage`."""
    b, n = report.bbox, len(report.cells)
    land = report.district_cells
    dists = sorted(c.distance_m for c in land or report.cells)
    m = len(dists)
    out = [
        f"Homes within coverage: {report.homes_covered} / {report.homes_total} "
        f"({_pct(report.home_share)})",
        f"Grid: {report.cell_km:g} km cells, {report.rows} rows x {report.cols} cols = {n} cells, "
        f"{b.south:.4f}-{b.north:.4f} N, {b.west:.4f}-{b.east:.4f} E",
        f"Distance to the nearest centre per district cell (m): min {dists[0]:.0f}, "
        f"median {statistics.median(dists):.0f}, p90 {dists[int(0.9 * (m - 1))]:.0f}, "
        f"max {dists[-1]:.0f}",
    ]
    if report.cols <= MAX_TABLE_COLS:
        out.append(
            "Nearest-centre distance per cell, km (north at the top; * = gap, "
            "  -   = outside the district, no homes):"
        )
        in_land = {(c.row, c.col) for c in land}
        for r in reversed(range(report.rows)):
            row = report.cells[r * report.cols : (r + 1) * report.cols]
            out.append(" ".join(_table_cell(c, (c.row, c.col) in in_land) for c in row))
    else:
        out.append("(grid too wide for a table: use --csv for every cell)")
    out.append(f"Cells with homes outside every coverage circle: {len(report.inhabited_gaps)}")
    out += [
        f"  row {c.row:3d} col {c.col:3d}  {c.lat:.5f} N {c.lon:.5f} E  "
        f"{c.uncovered_homes} of {c.homes} home(s) uncovered"
        for c in report.inhabited_gaps[:50]
    ]
    out.append(
        f"Gap cells (outside every coverage circle): {len(report.gaps)} of {len(land)} "
        f"district cells; {len(report.empty_gaps)} of them without uncovered homes"
    )
    out += [
        f"  row {c.row:3d} col {c.col:3d}  {c.lat:.5f} N {c.lon:.5f} E  "
        f"nearest {c.nearest_center_id} at {c.distance_m:.0f} m, {c.homes} home(s)"
        for c in report.gaps[:50]
    ]
    if len(report.gaps) > 50:
        out.append(f"  ... and {len(report.gaps) - 50} more (see --csv)")
    out += _load_lines(report, loads_known)
    return "\n".join(out) + "\n"
