"""Operator subcommands for dispatch: centre duty, coverage report, answer-time KPIs."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from alerting.coverage import BBox, cells_csv, coverage_report, render_text
from alerting.coverage_map import render_svg
from alerting.kpi import AnswerTimeKpi, CenterLoad, answer_time_kpis, center_loads
from alerting.settings import AlertingSettings
from gateway import FleetError, parse_fleet
from gateway.datum import district_outline_wgs84, outline_rings

logger = logging.getLogger(__name__)

# Channel the alerting service may LISTEN on to reload centres at once rather than on its timer.
DUTY_CHANNEL = "care_centers"
_ACTIVE = "('open', 'acknowledged', 'escalated')"


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register `centre duty|list`, `coverage` and `kpi`."""
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--database-url", help="PostgreSQL URL (default: $DATABASE_URL or the local server)"
    )

    centre = sub.add_parser("centre", aliases=["center"], help="care centres: duty and list")
    centre_sub = centre.add_subparsers(dest="centre_command", required=True, metavar="ACTION")
    duty = centre_sub.add_parser("duty", parents=[db], help="put a centre on or off duty")
    duty.add_argument("center_id")
    onoff = duty.add_mutually_exclusive_group(required=True)
    onoff.add_argument("--on", dest="on_duty", action="store_true", help="back on duty")
    onoff.add_argument(
        "--off", dest="on_duty", action="store_false", help="off duty: its alerts are re-routed"
    )
    duty.set_defaults(handler=cmd_centre_duty)
    lst = centre_sub.add_parser("list", parents=[db], help="list centres, duty and load")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(handler=cmd_centre_list)

    cov = sub.add_parser("coverage", parents=[db], help="coverage report and map of a fleet")
    cov.add_argument("fleet", type=Path, help="fleet file (contract §3)")
    cov.add_argument("--cell-km", type=float, default=1.0, help="grid cell side (default 1 km)")
    cov.add_argument("--bbox", help="district box S,W,N,E in degrees (default: the fleet's)")
    cov.add_argument("--csv", type=Path, help="write every cell to this CSV file")
    cov.add_argument("--svg", type=Path, default=Path("coverage.svg"), help="map (coverage.svg)")
    cov.add_argument("--png", type=Path, help="also the map as PNG (drawn by headless Chromium)")
    cov.add_argument("--since-hours", type=float, default=24.0, help="load period (default 24)")
    cov.add_argument("--no-db", action="store_true", help="skip centre load from the database")
    cov.add_argument(
        "--outline",
        type=Path,
        help="district outline GeoJSON (default: the bundled Xicheng outline; "
        'features with properties.datum "GCJ-02" are converted to WGS-84)',
    )
    cov.set_defaults(handler=cmd_coverage)

    kpi = sub.add_parser("kpi", parents=[db], help="telecare answer-time KPIs")
    kpi.add_argument("--since-hours", type=float, default=24.0, help="period (default 24)")
    kpi.add_argument("--json", action="store_true", help="print JSON")
    kpi.set_defaults(handler=cmd_kpi)


def _database_url(args: argparse.Namespace) -> str:
    url: str | None = getattr(args, "database_url", None)
    return url or AlertingSettings().database_url


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def cmd_centre_duty(args: argparse.Namespace) -> int:
    """`eldercare centre duty CENTER_ID --on|--off`."""
    with psycopg.connect(_database_url(args), autocommit=True) as conn:
        row = conn.execute(
            "UPDATE care_centers SET on_duty = %s, updated_at = now() WHERE id = %s"
            " RETURNING (SELECT count(*) FROM alerts"
            f" WHERE center_id = %s AND status IN {_ACTIVE})",
            (args.on_duty, args.center_id, args.center_id),
        ).fetchone()
        if row is None:
            print(f"no care centre {args.center_id!r}", file=sys.stderr)
            return 1
        conn.execute("SELECT pg_notify(%s, %s)", (DUTY_CHANNEL, args.center_id))
    state = "on duty" if args.on_duty else "off duty"
    tail = "" if args.on_duty else f"; {row[0]} active alert(s) to re-route"
    print(f"{args.center_id}: {state}{tail}")
    return 0


def cmd_centre_list(args: argparse.Namespace) -> int:
    """`eldercare centre list [--json]`."""
    with psycopg.connect(_database_url(args)) as conn:
        rows = conn.execute(
            "SELECT c.id, c.name, c.lat, c.lon, c.capacity, c.coverage_km2, c.on_duty,"
            f" count(a.alert_id) FILTER (WHERE a.status IN {_ACTIVE})"
            " FROM care_centers c LEFT JOIN alerts a ON a.center_id = c.id"
            " GROUP BY c.id ORDER BY c.id"
        ).fetchall()
    keys = ("id", "name", "lat", "lon", "capacity", "coverage_km2", "on_duty", "active")
    centres = [dict(zip(keys, r, strict=True)) for r in rows]
    if args.json:
        print(json.dumps(centres, ensure_ascii=False))
        return 0
    print(
        f"{'id':<16} {'duty':<4} {'active':>6} {'cap':>4} {'km2':>6} {'lat':>9} {'lon':>10}  name"
    )
    for c in centres:
        print(
            f"{c['id']:<16} {'on' if c['on_duty'] else 'OFF':<4} {c['active']:>6} "
            f"{c['capacity']:>4} {c['coverage_km2']:>6.2f} {c['lat']:>9.5f} {c['lon']:>10.5f}  "
            f"{c['name']}"
        )
    return 0


def _loads(url: str, since_ms: int, now_ms: int) -> list[CenterLoad] | None:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            return center_loads(conn, since_ms, now_ms)
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable) as exc:
        logger.warning("centre load unavailable: %s", str(exc).splitlines()[0])
        return None


def _parse_bbox(text: str | None) -> BBox | None:
    if text is None:
        return None
    south, west, north, east = (float(v) for v in text.split(","))
    if not (south < north and west < east):
        raise ValueError("--bbox must be S,W,N,E with S < N and W < E")
    return BBox(south, west, north, east)


def _outline(path: Path | None) -> tuple[list[list[tuple[float, float]]], str]:
    """The district rings in WGS-84 and the district's name for the map title."""
    collection = district_outline_wgs84(path)
    props = collection["features"][0].get("properties", {}) if collection["features"] else {}
    name = str(props.get("name_en") or props.get("name") or "District")
    return outline_rings(collection), name


def _svg_to_png(svg_path: Path, svg: str, png_path: Path) -> str | None:
    """Draw the SVG file as a PNG of the same size with headless Chromium; an error or None."""
    browser = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )
    size = re.search(r'<svg[^>]* width="(\d+)" height="(\d+)"', svg)
    if browser is None or size is None:
        return "--png needs Chromium (apt-get install chromium); the SVG is written"
    argv = [browser, "--headless", "--disable-gpu", "--hide-scrollbars"]
    if os.geteuid() == 0:  # Chromium refuses to run its sandbox as root
        argv.append("--no-sandbox")
    argv += [
        f"--window-size={size[1]},{size[2]}",
        f"--screenshot={png_path.resolve()}",
        svg_path.resolve().as_uri(),
    ]
    try:
        subprocess.run(argv, capture_output=True, timeout=120, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"Chromium could not draw the PNG: {exc}"
    return None if png_path.exists() else "Chromium wrote no PNG"


def cmd_coverage(args: argparse.Namespace) -> int:
    """`eldercare coverage FLEET`: print the report, write the SVG map (and the CSV)."""
    try:
        fleet = parse_fleet(args.fleet.read_bytes())
        bbox = _parse_bbox(args.bbox)
        rings, district = _outline(args.outline)
    except (OSError, FleetError, ValueError, KeyError, TypeError, IndexError) as exc:
        print(f"coverage: {exc}", file=sys.stderr)
        return 2
    now_ms = _now_ms()
    since_ms = now_ms - int(args.since_hours * 3_600_000)
    loads = None if args.no_db else _loads(_database_url(args), since_ms, now_ms)
    try:
        report = coverage_report(fleet, args.cell_km, bbox, loads or (), rings)
    except ValueError as exc:
        print(f"coverage: {exc}", file=sys.stderr)
        return 2
    print(render_text(report, loads_known=loads is not None), end="")
    svg = render_svg(report, fleet, title=district)
    args.svg.write_text(svg, encoding="utf-8")
    print(f"Map written to {args.svg}")
    if args.png is not None:
        error = _svg_to_png(args.svg, svg, args.png)
        if error:
            print(f"coverage: {error}", file=sys.stderr)
            return 1
        print(f"Map written to {args.png}")
    if args.csv is not None:
        args.csv.write_text(cells_csv(report), encoding="utf-8")
        print(f"Cells written to {args.csv}")
    return 0


def _kpi_line(k: AnswerTimeKpi) -> str:
    def pct(share: float | None) -> str:
        return "   n/a" if share is None else f"{100 * share:5.1f}%"

    verdict = {True: "meets", False: "BELOW", None: "-"}[k.meets_targets]
    return (
        f"{k.center_id or 'all centres':<16} {k.alerts:>7} {k.answered:>8} "
        f"{pct(k.share_60s)} ({k.within_60s}/{k.judged_60s}) "
        f"{pct(k.share_180s)} ({k.within_180s}/{k.judged_180s})  {verdict}"
    )


def cmd_kpi(args: argparse.Namespace) -> int:
    """`eldercare kpi [--since-hours H] [--json]`."""
    now_ms = _now_ms()
    since_ms = now_ms - int(args.since_hours * 3_600_000)
    with psycopg.connect(_database_url(args)) as conn:
        report = answer_time_kpis(conn, since_ms, now_ms)
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    print(f"Answer times of alerts raised in the last {args.since_hours:g} h")
    print("(targets: 97.5 % within 60 s, 99 % within 180 s)")
    print(f"{'centre':<16} {'alerts':>7} {'answered':>8} {'<=60 s':>6}          {'<=180 s':>6}")
    print(_kpi_line(report.overall))
    for k in report.centers:
        print(_kpi_line(k))
    return 0
