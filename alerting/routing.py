"""Nearest suitable care centre for an alert position: a haversine BallTree, queried incrementally.

The routing rule (issue "Dispatch: every alert to the nearest care centre that covers it"), among
the centres that are on duty and not excluded, in order of preference:

1. the nearest one whose coverage circle contains the position and which has spare capacity;
2. else the nearest one with spare capacity (`in_coverage` false);
3. else, no centre having capacity, the nearest covering one (`over_capacity` true);
4. else the nearest one at all (both flags).

Centres are indexed once per `set_centers`; duty, capacity and exclusions are filters applied
while walking the k nearest centres, k doubling until the rule is decided, so a typical alert
looks at a handful of centres whatever the size of the fleet. The rare alert the walk cannot
settle cheaply (every near centre full, or none covering) is finished by one vectorised pass.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.neighbors import BallTree

from gateway import CareCenter
from gateway.geo import EARTH_RADIUS_M

# First k of the incremental query: enough for the common case where the nearest centre or
# one of its neighbours covers the position and has a free slot.
_FIRST_K = 4
# One index query costs ~60 us whatever k (mostly sklearn's input validation), and a vectorised
# pass over every centre about as much at ~3,000 centres (bench/bench_routing.py). So an alert the
# first k nearest do not decide (near centres full, or none covering) is finished by one pass in
# fleets up to this size; in larger ones k keeps doubling up to 1/32 of the fleet first.
_PASS_BREAK_EVEN_N = 4096


class NoCenterError(LookupError):
    """No centre is on duty and not excluded, so an alert cannot be routed anywhere."""


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where one alert goes."""

    center_id: str
    distance_m: float  # great-circle metres from the alert position to the centre
    in_coverage: bool  # distance_m <= the centre's coverage radius (sqrt(coverage_km2*1e6/pi))
    over_capacity: bool  # no suitable centre had spare capacity


class _Walk:
    """Centres fed in increasing distance; keeps the first match of each rule."""

    __slots__ = ("any", "cap", "cover", "decided", "max_radius_m")

    def __init__(self, max_radius_m: float) -> None:
        self.max_radius_m = max_radius_m
        self.any: tuple[CareCenter, float] | None = None
        self.cover: tuple[CareCenter, float] | None = None
        self.cap: tuple[CareCenter, float] | None = None
        self.decided: RouteDecision | None = None

    def feed(self, center: CareCenter, distance_m: float, has_room: bool) -> RouteDecision | None:
        """Take the next-nearest usable centre; returns the decision once it is final."""
        covers = distance_m <= center.coverage_radius_m
        if self.any is None:
            self.any = (center, distance_m)
        if covers and self.cover is None:
            self.cover = (center, distance_m)
        if has_room and self.cap is None:
            self.cap = (center, distance_m)
        if covers and has_room:
            self.decided = RouteDecision(center.id, distance_m, True, False)
        elif self.cap is not None and distance_m > self.max_radius_m:
            # Nothing farther can cover the position: rule 2 is final.
            c, d = self.cap
            self.decided = RouteDecision(c.id, d, False, False)
        return self.decided

    def result(self) -> RouteDecision:
        """The decision after every usable centre has been fed."""
        if self.decided is not None:
            return self.decided
        for pick, over in ((self.cap, False), (self.cover, True), (self.any, True)):
            if pick is not None:
                c, d = pick
                return RouteDecision(c.id, d, d <= c.coverage_radius_m, over)
        raise NoCenterError("no care centre is on duty and not excluded")


class CenterIndex:
    """A spatial index of care centres answering the routing rule."""

    def __init__(self, centers: Iterable[CareCenter], max_walk_k: int | None = None) -> None:
        """Index the centres.

        Args:
            centers: The care centres.
            max_walk_k: Largest k queried before falling back to one pass over every centre
                (default: tuned to the fleet size; tests set it to exercise either path).
        """
        self.centers: tuple[CareCenter, ...] = tuple(centers)
        self.by_id: dict[str, CareCenter] = {c.id: c for c in self.centers}
        if len(self.by_id) != len(self.centers):
            raise ValueError("care centre ids must be unique")
        self._ids = [c.id for c in self.centers]
        self._pos = {cid: i for i, cid in enumerate(self._ids)}
        self._radius_m = np.array([c.coverage_radius_m for c in self.centers], dtype=float)
        self._capacity = np.array([c.capacity for c in self.centers], dtype=np.int64)
        self.max_radius_m = float(self._radius_m.max()) if self.centers else 0.0
        coords = np.radians(
            np.array([[c.lat, c.lon] for c in self.centers], dtype=float).reshape(-1, 2)
        )
        self._lat_rad: NDArray[np.float64] = coords[:, 0]
        self._lon_rad: NDArray[np.float64] = coords[:, 1]
        self._cos_lat: NDArray[np.float64] = np.cos(self._lat_rad)
        self._tree: BallTree | None = None
        if self.centers:
            self._tree = BallTree(coords, metric="haversine")
        n = len(self.centers)
        default_k = _FIRST_K if n <= _PASS_BREAK_EVEN_N else n // 32
        self.max_walk_k = default_k if max_walk_k is None else max_walk_k
        self.examined = 0  # centres looked at by all queries so far (for benchmarks)
        self.full_passes = 0  # queries the walk could not decide (for benchmarks)

    def __len__(self) -> int:
        return len(self.centers)

    def nearest(
        self, points: Sequence[tuple[float, float]], k: int
    ) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
        """The k nearest centres of each point, nearest first.

        Returns:
            Distances in metres and positions in `self.centers`, each (len(points), k).
        """
        if self._tree is None:
            raise NoCenterError("no care centres are registered")
        dist, idx = self._tree.query(np.radians(np.asarray(points, dtype=float)), k=k)
        return dist * EARTH_RADIUS_M, idx

    def covered(self, points: Sequence[tuple[float, float]]) -> list[bool]:
        """Whether each point lies within the coverage circle of at least one centre."""
        if self._tree is None or not points:
            return [False] * len(points)
        idxs, dists = self._tree.query_radius(
            np.radians(np.asarray(points, dtype=float)),
            r=self.max_radius_m / EARTH_RADIUS_M,
            return_distance=True,
        )
        return [
            bool(np.any(d * EARTH_RADIUS_M <= self._radius_m[i]))
            for i, d in zip(idxs, dists, strict=True)
        ]

    def route(
        self,
        lat: float,
        lon: float,
        open_counts: Mapping[str, int],
        unusable: Collection[str] = (),
    ) -> RouteDecision:
        """Apply the routing rule at (lat, lon).

        Args:
            lat: Alert latitude, WGS84 degrees.
            lon: Alert longitude, WGS84 degrees.
            open_counts: Active alerts per centre id (missing ids count as 0).
            unusable: Ids of centres to skip (off duty, or already tried).

        Raises:
            NoCenterError: when every centre is unusable.
        """
        return self._route_from(lat, lon, open_counts, unusable, None)

    def route_many(
        self,
        points: Sequence[tuple[float, float]],
        open_counts: Mapping[str, int],
        unusable: Collection[str] = (),
    ) -> list[RouteDecision]:
        """Route a batch in order, each alert taking a slot before the next is routed.

        Equivalent to calling `route` for each point and adding one to the chosen centre's
        count, but with one index query for the whole batch.
        """
        if not points:
            return []
        counts = dict(open_counts)
        k = min(_FIRST_K, len(self.centers))
        dist, idx = self.nearest(points, k) if self.centers else (None, None)
        arrays = self._arrays(counts, unusable)
        out = []
        for row, (lat, lon) in enumerate(points):
            first = None if dist is None or idx is None else (dist[row], idx[row])
            decision = self._route_from(lat, lon, counts, unusable, first, arrays)
            counts[decision.center_id] = counts.get(decision.center_id, 0) + 1
            arrays[0][self._pos[decision.center_id]] += 1
            out.append(decision)
        return out

    def _arrays(
        self, open_counts: Mapping[str, int], unusable: Collection[str]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Per-centre load and usability, aligned with `self.centers`."""
        n = len(self.centers)
        if 4 * len(open_counts) > n:  # dense: one C-level pass over the ids
            counts = np.fromiter(
                map(open_counts.get, self._ids, itertools.repeat(0)), dtype=np.int64, count=n
            )
        else:
            counts = np.zeros(n, dtype=np.int64)
            for cid, k in open_counts.items():
                if (i := self._pos.get(cid)) is not None:
                    counts[i] = k
        usable = np.ones(len(self.centers), dtype=bool)
        for cid in unusable:
            if (i := self._pos.get(cid)) is not None:
                usable[i] = False
        return counts, usable

    def _route_from(
        self,
        lat: float,
        lon: float,
        open_counts: Mapping[str, int],
        unusable: Collection[str],
        first: tuple[NDArray[np.float64], NDArray[np.intp]] | None,
        arrays: tuple[NDArray[np.int64], NDArray[np.bool_]] | None = None,
    ) -> RouteDecision:
        n = len(self.centers)
        walk = _Walk(self.max_radius_m)
        # Equidistant centres may come back in another order from a larger query, so what has
        # been fed is tracked by position, not by prefix length.
        fed: set[int] = set()
        k = min(_FIRST_K, n)
        while len(fed) < n:
            if k > self.max_walk_k:
                counts, usable = arrays or self._arrays(open_counts, unusable)
                return self._route_all(lat, lon, counts, usable)
            if first is not None and k == len(first[0]):
                dists, idxs = first
            else:
                d2, i2 = self.nearest([(lat, lon)], k)
                dists, idxs = d2[0], i2[0]
            for d, i in zip(dists.tolist(), idxs.tolist(), strict=True):
                if i in fed:
                    continue
                fed.add(i)
                self.examined += 1
                c = self.centers[i]
                if c.id in unusable:
                    continue
                decided = walk.feed(c, d, open_counts.get(c.id, 0) < c.capacity)
                if decided is not None:
                    return decided
            k = min(2 * k, n)
        return walk.result()

    def _route_all(
        self, lat: float, lon: float, counts: NDArray[np.int64], usable: NDArray[np.bool_]
    ) -> RouteDecision:
        """The rule in one vectorised pass over every centre (for far or overloaded cases)."""
        self.examined += len(self.centers)
        self.full_passes += 1
        p, q = math.radians(lat), math.radians(lon)
        h = (
            np.sin((self._lat_rad - p) / 2) ** 2
            + math.cos(p) * self._cos_lat * np.sin((self._lon_rad - q) / 2) ** 2
        )
        d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
        cover, room = d <= self._radius_m, counts < self._capacity
        rules = ((cover & room, False), (room, False), (cover, True), (usable, True))
        for mask, over in rules:
            mask = mask & usable
            if mask.any():
                i = int(np.flatnonzero(mask)[np.argmin(d[mask])])
                return RouteDecision(self.centers[i].id, float(d[i]), bool(cover[i]), over)
        raise NoCenterError("no care centre is on duty and not excluded")
