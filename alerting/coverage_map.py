"""The coverage report drawn as a self-contained SVG map on the district outline.

Pure: a `CoverageReport` and its fleet in, SVG text out; no map tiles. The projection is
equirectangular with x scaled by cos(mid latitude), accurate to well under 1 % across a
district of a few kilometres, so coverage circles stay round and the scale bar holds
everywhere on the map. Colours are told apart by lightness as well as hue, and every class is
named in the legend: red cells hold homes outside every coverage circle, grey cells are
district land outside coverage with nobody there at risk, land outside the district is left
uncoloured because nobody is meant to be covered there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape

from alerting.coverage import M_PER_DEG_LAT, BBox, Cell, CoverageReport, point_in_rings
from gateway import Fleet

RED = "#c62828"  # cells with homes outside coverage
GREY = "#9e9e9e"  # district land outside coverage, no uncovered homes
BLUE = "#1565c0"  # coverage circles and centres
PINK = "#ad1457"  # centres over capacity in the load period
HOME_OK = "#2e7d32"
HOME_BARE = "#000000"
# Above this many centres, names go to a numbered key under the map instead of on it.
MAX_NAMED_ON_MAP = 24
_HEADER_PX = 46
_LINE_PX = 18


@dataclass(frozen=True, slots=True)
class _Projection:
    """Equirectangular lat/lon -> pixels, x scaled by cos(mid latitude) so circles stay round."""

    west: float
    north: float
    kx_m_per_deg: float
    px_per_m: float
    width_px: int
    height_px: int
    top_px: int

    @classmethod
    def around(cls, b: BBox, margin_m: float, width_px: int, top_px: int) -> _Projection:
        kx = M_PER_DEG_LAT * math.cos(math.radians((b.south + b.north) / 2))
        west, east = b.west - margin_m / kx, b.east + margin_m / kx
        south, north = b.south - margin_m / M_PER_DEG_LAT, b.north + margin_m / M_PER_DEG_LAT
        px_per_m = width_px / ((east - west) * kx)
        height_px = round((north - south) * M_PER_DEG_LAT * px_per_m)
        return cls(west, north, kx, px_per_m, width_px, height_px, top_px)

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        return (
            (lon - self.west) * self.kx_m_per_deg * self.px_per_m,
            self.top_px + (self.north - lat) * M_PER_DEG_LAT * self.px_per_m,
        )


def _outline_path(report: CoverageReport, pj: _Projection) -> str:
    parts = []
    for ring in report.outline:
        pts = " L".join("{:.1f},{:.1f}".format(*pj.xy(lat, lon)) for lat, lon in ring)
        parts.append(f"M{pts} Z")
    return " ".join(parts)


def _cell_rect(c: Cell, report: CoverageReport, pj: _Projection) -> str:
    w = report.cell_km * 1000 * pj.px_per_m
    x, y = pj.xy(c.lat, c.lon)
    return f'<rect x="{x - w / 2:.1f}" y="{y - w / 2:.1f}" width="{w:.1f}" height="{w:.1f}"/>'


def _svg_cells(report: CoverageReport, pj: _Projection) -> list[str]:
    """Red and grey cells and the 1 km grid lines, clipped to the district outline."""
    clip = ' clip-path="url(#district)"' if report.outline else ""
    out = [f'<g id="empty-gaps" fill="{GREY}" fill-opacity="0.45"{clip}>']
    out += [_cell_rect(c, report, pj) for c in report.empty_gaps]
    out += ["</g>", f'<g id="gaps" fill="{RED}" fill-opacity="0.55"{clip}>']
    out += [_cell_rect(c, report, pj) for c in report.inhabited_gaps]
    out += ["</g>", f'<g id="grid" fill="none" stroke="#607d8b" stroke-opacity="0.35"{clip}>']
    out += [_cell_rect(c, report, pj) for c in report.district_cells]
    return [*out, "</g>"]


def homes_outside(report: CoverageReport) -> int:
    """Homes of the fleet that lie outside the district outline (0 without an outline)."""
    if not report.outline:
        return 0
    return sum(not point_in_rings(lat, lon, report.outline) for lat, lon, _ in report.home_points)


def _short_label(i: int, name: str, many: bool) -> str:
    return str(i + 1) if many else name


def _svg_centres(report: CoverageReport, fleet: Fleet, pj: _Projection) -> list[str]:
    over = {load.center_id for load in report.over_capacity}
    many = len(fleet.care_centers) > MAX_NAMED_ON_MAP
    circles = [f'<g id="coverage" fill="{BLUE}" fill-opacity="0.08" stroke="{BLUE}">']
    squares = ['<g id="centres" stroke="#ffffff">']
    labels = [
        '<g id="centre-labels" font-size="10" fill="#0d1b2a" stroke="#ffffff" '
        'stroke-width="3" paint-order="stroke">'
    ]
    for i, cc in enumerate(fleet.care_centers):
        x, y = pj.xy(cc.lat, cc.lon)
        r = cc.coverage_radius_m * pj.px_per_m
        circles.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" stroke-opacity="0.6"/>')
        colour = PINK if cc.id in over else BLUE
        squares.append(
            f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}">'
            f"<title>{escape(cc.name)} ({escape(cc.id)})</title></rect>"
        )
        label = escape(_short_label(i, cc.name, many))
        labels.append(f'<text x="{x + 6:.1f}" y="{y - 5:.1f}">{label}</text>')
    return [*circles, "</g>", *_svg_homes(report, pj), *squares, "</g>", *labels, "</g>"]


def _svg_homes(report: CoverageReport, pj: _Projection) -> list[str]:
    out = ['<g id="homes" stroke="none">']
    for lat, lon, covered in report.home_points:
        x, y = pj.xy(lat, lon)
        if covered:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.6" fill="{HOME_OK}"/>')
        else:
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.4" fill="{HOME_BARE}" '
                'stroke="#ffffff" stroke-width="0.8"/>'
            )
    return [*out, "</g>"]


def _nice_scale_m(px_per_m: float, max_px: float) -> float:
    """The longest of 250 m, 500 m, 1, 2, 5 km whose bar fits in `max_px`."""
    fitting = [m for m in (250.0, 500.0, 1000.0, 2000.0, 5000.0) if m * px_per_m <= max_px]
    return fitting[-1] if fitting else 250.0


def _svg_scale_and_north(pj: _Projection) -> list[str]:
    length_m = _nice_scale_m(pj.px_per_m, pj.width_px / 4)
    w = length_m * pj.px_per_m
    x0, y0 = 16.0, pj.top_px + pj.height_px - 18.0
    label = f"{length_m / 1000:g} km" if length_m >= 1000 else f"{length_m:g} m"
    ax, ay = pj.width_px - 28.0, pj.top_px + 16.0
    return [
        '<g id="scale" font-size="11" fill="#000000">',
        f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{w / 2:.1f}" height="5" fill="#000000"/>',
        f'<rect x="{x0 + w / 2:.1f}" y="{y0:.1f}" width="{w / 2:.1f}" height="5" '
        'fill="#ffffff" stroke="#000000"/>',
        f'<text x="{x0:.1f}" y="{y0 - 4:.1f}">0</text>',
        f'<text x="{x0 + w:.1f}" y="{y0 - 4:.1f}" text-anchor="middle">{label}</text>',
        "</g>",
        f'<g id="north"><path d="M{ax},{ay} l-7,18 l7,-5 l7,5 Z" fill="#000000"/>'
        f'<text x="{ax}" y="{ay + 32}" text-anchor="middle" font-size="12">N</text></g>',
    ]


def _legend_items(report: CoverageReport, fleet: Fleet) -> list[tuple[str, str]]:
    """(swatch SVG at 0,0 in a 16 px box, label) for every class drawn on the map."""
    n_red, n_grey = len(report.inhabited_gaps), len(report.empty_gaps)
    bare = report.homes_total - report.homes_covered
    return [
        (
            f'<rect width="16" height="12" fill="{RED}" fill-opacity="0.55"/>',
            f"cell with homes outside coverage ({n_red})",
        ),
        (
            f'<rect width="16" height="12" fill="{GREY}" fill-opacity="0.45"/>',
            f"district land outside coverage, no homes at risk ({n_grey})",
        ),
        (
            '<rect width="16" height="12" fill="none" stroke="#607d8b"/>',
            f"{report.cell_km:g} km grid cell",
        ),
        (
            f'<circle cx="8" cy="6" r="6" fill="{BLUE}" fill-opacity="0.08" stroke="{BLUE}"/>',
            "coverage circle of a centre",
        ),
        (
            f'<rect x="4" y="2" width="8" height="8" fill="{BLUE}"/>',
            f"care centre ({len(fleet.care_centers)})",
        ),
        (
            f'<rect x="4" y="2" width="8" height="8" fill="{PINK}"/>',
            f"centre over capacity in the period ({len(report.over_capacity)})",
        ),
        (
            f'<circle cx="8" cy="6" r="2" fill="{HOME_OK}"/>',
            f"home within coverage ({report.homes_covered})",
        ),
        (f'<circle cx="8" cy="6" r="2.6" fill="{HOME_BARE}"/>', f"home outside coverage ({bare})"),
        ('<path d="M0,6 H16" stroke="#263238" stroke-width="2"/>', "district boundary"),
    ]


def _svg_legend(report: CoverageReport, fleet: Fleet, top: float, width: int) -> list[str]:
    items = _legend_items(report, fleet)
    col_w = width / 2
    out = ['<g id="legend" font-size="12" fill="#000000">']
    for i, (swatch, label) in enumerate(items):
        x, y = 12 + (i % 2) * col_w, top + (i // 2) * _LINE_PX
        out.append(f'<g transform="translate({x:.1f},{y - 10:.1f})">{swatch}</g>')
        out.append(f'<text x="{x + 22:.1f}" y="{y:.1f}">{escape(label)}</text>')
    return [*out, "</g>"]


def _svg_key(fleet: Fleet, top: float, width: int) -> tuple[list[str], float]:
    """Numbered centre names under the map when there are too many to write on it."""
    if len(fleet.care_centers) <= MAX_NAMED_ON_MAP:
        return [], 0.0
    cols = 3
    rows = math.ceil(len(fleet.care_centers) / cols)
    out = [
        f'<g id="centre-key" font-size="10" fill="#000000">'
        f'<text x="12" y="{top:.1f}" font-weight="bold">Centres</text>'
    ]
    for i, cc in enumerate(fleet.care_centers):
        x = 12 + (i // rows) * width / cols
        y = top + 14 + (i % rows) * 12
        out.append(f'<text x="{x:.1f}" y="{y:.1f}">{i + 1}  {escape(cc.name)}</text>')
    return [*out, "</g>"], 14 + rows * 12.0


def _grid_extent(report: CoverageReport) -> BBox:
    """The box of whole grid cells (the grid overhangs the report's box by up to a cell)."""
    first, last = report.cells[0], report.cells[-1]
    half_lat = first.lat - report.bbox.south  # the first centre is half a cell in
    half_lon = first.lon - report.bbox.west
    return BBox(
        report.bbox.south,
        report.bbox.west,
        max(report.bbox.north, last.lat + half_lat),
        max(report.bbox.east, last.lon + half_lon),
    )


def render_svg(
    report: CoverageReport, fleet: Fleet, width_px: int = 900, title: str = "District"
) -> str:
    """A self-contained SVG map: outline, gaps, grid, coverage circles, homes, centres,
    legend, scale bar, north arrow and a caption with the report's figures."""
    margin_m = 1.1 * max(c.coverage_radius_m for c in fleet.care_centers) + 100
    pj = _Projection.around(_grid_extent(report), margin_m, width_px, _HEADER_PX)
    legend_top = pj.top_px + pj.height_px + 24
    n_legend_rows = math.ceil(len(_legend_items(report, fleet)) / 2)
    key, key_h = _svg_key(fleet, legend_top + n_legend_rows * _LINE_PX + 8, width_px)
    total_h = round(legend_top + n_legend_rows * _LINE_PX + 12 + key_h)
    share = report.home_share
    caption = (
        f"Homes within coverage: {report.homes_covered} / {report.homes_total}"
        + ("" if share is None else f" ({100 * share:.1f} %)")
        + f"; {len(report.gaps)} of {len(report.district_cells)} district cells outside coverage"
    )
    outside = homes_outside(report)
    if outside:
        caption += f"; {outside} home(s) lie outside the district outline"
    outline = _outline_path(report, pj)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_px}" height="{total_h}" '
        f'viewBox="0 0 {width_px} {total_h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width_px}" height="{total_h}" fill="#ffffff"/>',
        f'<rect y="{pj.top_px}" width="{width_px}" height="{pj.height_px}" fill="#eceff1"/>',
        f'<defs><clipPath id="district"><path d="{outline}" clip-rule="evenodd"/></clipPath></defs>'
        if outline
        else "",
        f'<path id="district-land" d="{outline}" fill="#ffffff" fill-rule="evenodd"/>'
        if outline
        else "",
        f'<text x="12" y="20" font-size="16" font-weight="bold">'
        f"{escape(title)}: care-centre coverage</text>",
        f'<text x="12" y="38">{escape(caption)}</text>',
        *_svg_cells(report, pj),
        f'<path id="boundary" d="{outline}" fill="none" stroke="#263238" stroke-width="2"/>'
        if outline
        else "",
        *_svg_centres(report, fleet, pj),
        *_svg_scale_and_north(pj),
        *_svg_legend(report, fleet, legend_top, width_px),
        *key,
        "</svg>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
