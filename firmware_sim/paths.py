"""Walking paths on a street grid: daily walks and dementia wandering episodes (pure).

Paths are (k, 2) arrays of (east_m, north_m) relative to the elder's home, sampled every
few metres. Xicheng's old town is a near-orthogonal grid of hutongs, so walks follow
east-west and north-south streets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Path = npt.NDArray[np.float64]

# Hutong blocks in Beijing's old city are roughly 70–150 m apart.
BLOCK_M = 120.0
STEP_M = 10.0
# Wandering distance from home at which people are found: median ~700 m, 80 % within
# 2 km, 95 % within 5.8 km (data README). A lognormal with median 700 m and sigma 1.27
# gives 80 % at 2.04 km and 95 % at 5.65 km.
WANDER_MEDIAN_M = 700.0
WANDER_SIGMA = 1.27
WANDER_MAX_M = 15_000.0
# Random wandering dominates; lapping/pacing and direct travel are less common.
WANDER_PATTERNS = {"random": 0.6, "lapping": 0.15, "direct": 0.25}
_DIRS = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])


@dataclass(frozen=True, slots=True)
class Route:
    """A path with its cumulative length, for position-at-distance lookups."""

    points: Path
    cum_m: npt.NDArray[np.float64]

    @classmethod
    def of(cls, points: Path) -> Route:
        """Build a route from its points."""
        seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
        return cls(points, np.concatenate([[0.0], np.cumsum(seg)]))

    @property
    def length_m(self) -> float:
        """Total length."""
        return float(self.cum_m[-1])

    def at(self, distance_m: float) -> tuple[float, float]:
        """Position after walking `distance_m` along the route (clamped to its ends)."""
        d = min(max(distance_m, 0.0), self.length_m)
        x = float(np.interp(d, self.cum_m, self.points[:, 0]))
        y = float(np.interp(d, self.cum_m, self.points[:, 1]))
        return x, y


def _segment(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> Path:
    n = max(1, int(np.ceil(np.linalg.norm(b - a) / STEP_M)))
    return a + np.outer(np.linspace(0, 1, n + 1)[1:], b - a)


def staircase(
    start: npt.NDArray[np.float64], end: npt.NDArray[np.float64], rng: np.random.Generator
) -> Path:
    """A grid path from start to end: alternating east-west and north-south legs."""
    points = [start[None, :]]
    here = start.astype(float).copy()
    while np.abs(end - here).max() > 1e-6:
        gap = end - here
        both = bool(np.all(np.abs(gap) > 1e-6))
        axis = int(rng.integers(0, 2)) if both else int(np.argmax(np.abs(gap)))
        limit_m = BLOCK_M * rng.uniform(1, 3)
        nxt = here.copy()
        nxt[axis] += np.clip(gap[axis], -limit_m, limit_m)
        points.append(_segment(here, nxt))
        here = nxt
    return np.concatenate(points)


# A daily walk keeps within this share of the elder's safe-zone radius: care staff draw a
# safe zone around the streets a person walks every day (an alarm on every morning walk
# would be switched off), and the margin keeps GPS error (68 % radius 5-50 m, wearables.py)
# from putting three fixes in a row outside it.
WALK_REACH = 0.7
_MAX_LEGS = 400


def neighbourhood_walk(length_m: float, radius_m: float, rng: np.random.Generator) -> Path:
    """A daily walk of about `length_m` along the grid, within `WALK_REACH` x `radius_m` of home.

    Errands and strolls: legs to places drawn in the square that the reach circumscribes (a
    grid path between two points of it stays in it), until going home makes up the length;
    then home. A walk shorter than the way to its first place is that first leg and back.
    """
    half = WALK_REACH * radius_m / np.sqrt(2.0)
    here = np.zeros(2)
    pieces = [here[None, :]]
    walked = 0.0
    for _ in range(_MAX_LEGS):
        place = rng.uniform(-half, half, 2)
        pieces.append(staircase(here, place, rng)[1:])
        walked += float(np.abs(place - here).sum())
        here = place
        if walked + float(np.abs(here).sum()) >= length_m:
            break
    pieces.append(staircase(here, np.zeros(2), rng)[1:])
    return np.concatenate(pieces)


def sample_wander(rng: np.random.Generator) -> tuple[str, float]:
    """Draw a wandering pattern and the distance from home at which the person is found."""
    names = list(WANDER_PATTERNS)
    pattern = names[int(rng.choice(len(names), p=list(WANDER_PATTERNS.values())))]
    distance_m = float(
        np.clip(rng.lognormal(np.log(WANDER_MEDIAN_M), WANDER_SIGMA), 30, WANDER_MAX_M)
    )
    return pattern, distance_m


def _random_walk(target_m: float, rng: np.random.Generator) -> Path:
    """Persistent random walk on the grid, mildly drifting outwards, until target_m away."""
    here, heading = np.zeros(2), int(rng.integers(0, 4))
    points = [here[None, :]]
    for _ in range(20_000):
        outward = here / (np.linalg.norm(here) + 1e-9)
        turn = np.array([0.45, 0.2, 0.05, 0.2])  # straight, left, back, right
        weights = turn[(np.arange(4) - heading) % 4] * np.exp(0.6 * (_DIRS @ outward))
        heading = int(rng.choice(4, p=weights / weights.sum()))
        leg = _segment(here, here + _DIRS[heading] * BLOCK_M)
        beyond = np.nonzero(np.linalg.norm(leg, axis=1) >= target_m)[0]
        if beyond.size:
            points.append(leg[: beyond[0] + 1])
            break
        points.append(leg)
        here = leg[-1]
    return np.concatenate(points)


def _lapping(target_m: float, rng: np.random.Generator) -> Path:
    """Laps around a block-sized rectangle from home, ending at its far corner."""
    angle = rng.uniform(np.radians(20), np.radians(70))
    sx, sy = rng.choice([-1.0, 1.0], 2)
    w, h = sx * target_m * np.cos(angle), sy * target_m * np.sin(angle)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]])
    pieces = [corners[:1]]
    for _ in range(int(rng.integers(2, 5))):
        for a, b in zip(corners, np.roll(corners, -1, axis=0), strict=True):
            pieces.append(_segment(a, b))
    pieces += [_segment(corners[0], corners[1]), _segment(corners[1], corners[2])]
    return np.concatenate(pieces)


def wander_path(pattern: str, target_m: float, rng: np.random.Generator) -> Path:
    """A wandering episode's path from home, ending where the person is found.

    Args:
        pattern: random (persistent random walk), lapping (repeated loops) or direct
            (purposeful travel away along the grid).
        target_m: distance from home at the end of the episode.
        rng: random source.

    Raises:
        ValueError: for an unknown pattern.
    """
    if pattern == "random":
        return _random_walk(target_m, rng)
    if pattern == "lapping":
        return _lapping(target_m, rng)
    if pattern == "direct":
        heading = rng.uniform(0, 2 * np.pi)
        end = target_m * np.array([np.cos(heading), np.sin(heading)])
        return staircase(np.zeros(2), end, rng)
    raise ValueError(f"unknown wandering pattern {pattern!r}")
