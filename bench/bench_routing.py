"""Routing speed: BallTree walk vs a brute-force numpy scan of every centre, same run.

Prints per-alert latency (p50/p99), batch throughput and centres examined per alert, for fleets
of 300 and 3,000 centres at a constant density (one centre per ~0.5 km², 1 km² coverage, load
drawn uniformly from 0..capacity so about a quarter of the centres are full), and with every
centre full. The scan is the baseline: ratio > 1 means the index is faster.

Usage: .venv/bin/python bench/bench_routing.py [--alerts N] [--sizes 300,3000] [--seed S]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from alerting.dispatch import Dispatcher
from alerting.routing import RouteDecision
from gateway import CareCenter
from gateway.geo import EARTH_RADIUS_M

CENTRE_LAT, CENTRE_LON = 39.919, 116.355  # middle of Xicheng district
KM2_PER_CENTRE = 0.5
Point = tuple[float, float]
BURST = 100  # alerts routed together, e.g. one tick of the alerting service in a busy hour


class Scan:
    """The routing rule by computing the distance to every centre (vectorised numpy)."""

    def __init__(self, centers: Sequence[CareCenter]) -> None:
        self.ids = [c.id for c in centers]
        self.lat = np.radians([c.lat for c in centers])
        self.lon = np.radians([c.lon for c in centers])
        self.cos_lat = np.cos(self.lat)
        self.radius = np.array([c.coverage_radius_m for c in centers])
        self.capacity = np.array([c.capacity for c in centers])

    def route(self, lat: float, lon: float, counts: NDArray[np.int64]) -> RouteDecision:
        """Route one alert; `counts` is indexed like the centres."""
        p, q = math.radians(lat), math.radians(lon)
        h = (
            np.sin((self.lat - p) / 2) ** 2
            + math.cos(p) * self.cos_lat * np.sin((self.lon - q) / 2) ** 2
        )
        d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
        cover, room = d <= self.radius, counts < self.capacity
        for mask, over in ((cover & room, False), (room, False), (cover, True)):
            if mask.any():
                i = int(np.flatnonzero(mask)[np.argmin(d[mask])])
                return RouteDecision(self.ids[i], float(d[i]), bool(cover[i]), over)
        i = int(np.argmin(d))
        return RouteDecision(self.ids[i], float(d[i]), bool(cover[i]), True)


def make_fleet(n: int, rng: np.random.Generator) -> tuple[list[CareCenter], float, float]:
    """n centres in a square around Xicheng; returns the centres and the half-sides in degrees."""
    half_km = math.sqrt(n * KM2_PER_CENTRE) / 2
    dlat = half_km / 111.195
    dlon = dlat / math.cos(math.radians(CENTRE_LAT))
    lats = rng.uniform(CENTRE_LAT - dlat, CENTRE_LAT + dlat, n)
    lons = rng.uniform(CENTRE_LON - dlon, CENTRE_LON + dlon, n)
    centers = [
        CareCenter(f"cc-{i:05d}", f"Centre {i}", float(a), float(b), 3, 1.0)
        for i, (a, b) in enumerate(zip(lats, lons, strict=True))
    ]
    return centers, dlat, dlon


def timed(
    route: Callable[[float, float], RouteDecision], points: list[tuple[float, float]]
) -> list[float]:
    """Microseconds per call of route over the points."""
    out = []
    for lat, lon in points:
        t0 = time.perf_counter_ns()
        route(lat, lon)
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values."""
    return float(np.percentile(values, q))


def random_points(n: int, dlat: float, dlon: float, rng: np.random.Generator) -> list[Point]:
    """n alert positions drawn uniformly over the fleet's square."""
    lats = rng.uniform(CENTRE_LAT - dlat, CENTRE_LAT + dlat, n)
    lons = rng.uniform(CENTRE_LON - dlon, CENTRE_LON + dlon, n)
    return [(float(a), float(b)) for a, b in zip(lats, lons, strict=True)]


def batch_seconds(
    dispatcher: Dispatcher, scan: Scan, points: list[Point], counts: dict[str, int]
) -> tuple[float, float]:
    """Seconds to route every burst of points, each burst from the same starting load."""
    bursts = [points[i : i + BURST] for i in range(0, len(points), BURST)]
    t = time.perf_counter()
    for burst in bursts:
        dispatcher.route_many(burst, counts)
    tree_s = time.perf_counter() - t
    pos = {cid: i for i, cid in enumerate(scan.ids)}
    start = np.array([counts[cid] for cid in scan.ids])
    t = time.perf_counter()
    for burst in bursts:
        running = start.copy()
        for lat, lon in burst:
            running[pos[scan.route(lat, lon, running).center_id]] += 1
    return tree_s, time.perf_counter() - t


def bench_size(n: int, n_alerts: int, rng: np.random.Generator) -> None:
    """Measure and print one fleet size."""
    centers, dlat, dlon = make_fleet(n, rng)
    loads = rng.integers(0, 4, n)  # 0..capacity: a quarter of the centres are full
    counts = {c.id: int(k) for c, k in zip(centers, loads, strict=True)}
    points = random_points(n_alerts, dlat, dlon, rng)
    t = time.perf_counter()
    dispatcher = Dispatcher(centers)
    build_ms = (time.perf_counter() - t) * 1000
    scan = Scan(centers)
    count_arr = np.array([counts[c.id] for c in centers])
    tree_us = timed(lambda lat, lon: dispatcher.route(lat, lon, counts), points)
    scan_us = timed(lambda lat, lon: scan.route(lat, lon, count_arr), points)
    disagree = sum(
        abs(dispatcher.route(*p, counts).distance_m - scan.route(*p, count_arr).distance_m) > 1e-6
        for p in points
    )
    examined = dispatcher.index.examined / (2 * n_alerts)
    walked = 1 - dispatcher.index.full_passes / (2 * n_alerts)
    full = {c.id: c.capacity for c in centers}
    full_arr = np.array([c.capacity for c in centers])
    over_tree = timed(lambda lat, lon: dispatcher.route(lat, lon, full), points[:1000])
    over_scan = timed(lambda lat, lon: scan.route(lat, lon, full_arr), points[:1000])
    batch_tree_s, batch_scan_s = batch_seconds(dispatcher, scan, points, counts)

    print(f"{n:>6} centres, {n_alerts} alerts (index built in {build_ms:.1f} ms)")
    for name, xs in (("index", tree_us), ("scan ", scan_us)):
        print(f"   route() {name} p50 {pct(xs, 50):8.1f} us   p99 {pct(xs, 99):8.1f} us")
    print(
        f"   ratio scan/index: p50 {pct(scan_us, 50) / pct(tree_us, 50):.2f}x, "
        f"p99 {pct(scan_us, 99) / pct(tree_us, 99):.2f}x; "
        f"decided by the walk {100 * walked:.1f} %, centres examined per alert {examined:.2f} "
        f"of {n}; disagreements with the scan {disagree}"
    )
    print(
        f"   every centre full: index p50 {pct(over_tree, 50):.1f} us, scan p50 "
        f"{pct(over_scan, 50):.1f} us, ratio {pct(over_scan, 50) / pct(over_tree, 50):.2f}x"
    )
    print(
        f"   batch, bursts of {BURST} taking slots in order: index {n_alerts / batch_tree_s:8.0f}"
        f" alerts/s, scan {n_alerts / batch_scan_s:8.0f} alerts/s, "
        f"ratio {batch_scan_s / batch_tree_s:.2f}x"
    )


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--sizes", default="300,3000")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for n in (int(s) for s in args.sizes.split(",")):
        bench_size(n, args.alerts, rng)


if __name__ == "__main__":
    main()
