"""An elder's day: sleep, time at home, walks and wandering episodes, as timed segments (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from firmware_sim.conditions import draw_immobility_ms
from firmware_sim.geo import offset
from firmware_sim.paths import (
    Route,
    neighbourhood_walk,
    sample_wander,
    staircase,
    wander_path,
)
from gateway import Elder

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# Beijing is UTC+8 all year (no daylight saving).
LOCAL_OFFSET_MS = 8 * HOUR_MS
MOVING = frozenset({"walk", "wander", "return"})
# Segments walked on foot (steps at the walking cadence); "return" moves too, but the elder is
# driven home (ESCORT_SPEED_M_S) and takes no steps.
ON_FOOT = frozenset({"walk", "wander"})
# Heart-rate rise over resting by activity; walking adds 15–30 bpm in older adults.
HR_DELTA_BPM = {
    "sleep": -8.0,
    "home": 0.0,
    "walk": 22.0,
    "wander": 28.0,
    "return": 8.0,
    "fallen": 25.0,
    "still": 0.0,
}
# Wandering is more frequent in the late afternoon and evening ("sundowning").
WANDER_HOUR_WEIGHTS = np.array([0.2] * 6 + [0.5] * 6 + [1.0] * 4 + [2.5] * 5 + [1.0] * 3)
# Found wanderers are driven home (18 km/h through the streets, plus a minute to set off).
ESCORT_SPEED_M_S = 5.0


@dataclass(frozen=True, slots=True)
class Profile:
    """Per-elder habits, drawn once from the elder's seeded generator."""

    rest_hr_bpm: float
    walk_speed_m_s: float
    dementia: bool
    charges_nightly: bool
    wake_h: float
    bed_h: float
    wander_per_day: float


def make_profile(rng: np.random.Generator, has_band: bool) -> Profile:
    """Draw an elder's habits. Dementia (wandering) only for band wearers."""
    return Profile(
        rest_hr_bpm=float(rng.uniform(58, 82)),
        walk_speed_m_s=float(rng.uniform(0.7, 1.1)),
        dementia=has_band and bool(rng.random() < 0.3),
        charges_nightly=bool(rng.random() < 0.7),
        wake_h=float(rng.uniform(5.5, 7.0)),
        bed_h=float(rng.uniform(21.0, 22.5)),
        wander_per_day=0.15,
    )


@dataclass(frozen=True, slots=True)
class Segment:
    """What the elder does from `start_ms` to `end_ms`.

    Attributes:
        kind: sleep, home, walk, wander, return (escorted home), fallen, or still (immobile
            at home for hours, see firmware_sim.conditions).
        route: the path walked (metres from `origin`), for moving kinds.
        origin: (east_m, north_m) from home where the route starts or the elder stays.
        detail: e.g. the wandering pattern and distance.
    """

    kind: str
    start_ms: int
    end_ms: int
    route: Route | None = None
    speed_m_s: float = 0.0
    origin: tuple[float, float] = (0.0, 0.0)
    detail: str = ""

    @property
    def moving(self) -> bool:
        """Whether the elder walks during it."""
        return self.kind in MOVING

    def local_xy(self, t_ms: int) -> tuple[float, float]:
        """Position in metres from home at `t_ms`."""
        if self.route is None:
            return self.origin
        x, y = self.route.at(self.speed_m_s * (t_ms - self.start_ms) / 1000)
        return self.origin[0] + x, self.origin[1] + y


def wander_segments(
    start_ms: int,
    origin: tuple[float, float],
    speed_m_s: float,
    rng: np.random.Generator,
    pattern: str | None = None,
    distance_m: float | None = None,
) -> list[Segment]:
    """A wandering episode from `origin` and the escorted return home afterwards."""
    drawn_pattern, drawn_m = sample_wander(rng)
    pattern, distance_m = pattern or drawn_pattern, distance_m or drawn_m
    route = Route.of(wander_path(pattern, distance_m, rng))
    end = start_ms + int(route.length_m / speed_m_s * 1000)
    found = (origin[0] + float(route.points[-1, 0]), origin[1] + float(route.points[-1, 1]))
    detail = f"pattern={pattern} distance_m={math.hypot(*route.points[-1]):.0f}"
    back = Route.of(staircase(np.array(found), np.zeros(2), rng))
    back_end = end + int(back.length_m / ESCORT_SPEED_M_S * 1000) + 60_000
    return [
        Segment("wander", start_ms, end, route, speed_m_s, origin, detail),
        Segment("return", end, back_end, back, ESCORT_SPEED_M_S, (0.0, 0.0)),
    ]


class Routine:
    """The elder's timeline: a seeded plan per local day, with injected overrides on top."""

    def __init__(
        self,
        elder: Elder,
        profile: Profile,
        seed: int,
        key: int,
        inactivity_per_day: float = 0.0,
    ) -> None:
        """Build the routine of `elder`; `seed` and `key` make each day's plan reproducible.

        `inactivity_per_day` is the chance that a day holds an immobility episode (a `still`
        segment in the daytime, drawn from its own stream so other draws do not move).
        """
        self.elder = elder
        self.profile = profile
        self._seed, self._key = seed, key
        self.inactivity_per_day = inactivity_per_day
        self._days: dict[int, list[Segment]] = {}
        self._overrides: list[Segment] = []
        self._claimed: set[tuple[str, int]] = set()

    def _plan(self, day: int) -> list[Segment]:
        plan = self._days.get(day)
        if plan is None:
            if len(self._days) > 3:
                self._days.pop(min(self._days))
            plan = self._days[day] = self._make_plan(day)
        return plan

    def _make_plan(self, day: int) -> list[Segment]:
        rng = np.random.default_rng([self._seed, self._key, day])
        p = self.profile
        d0 = day * DAY_MS - LOCAL_OFFSET_MS
        wake = d0 + int((p.wake_h + rng.normal(0, 0.3)) * HOUR_MS)
        bed = d0 + int((p.bed_h + rng.normal(0, 0.3)) * HOUR_MS)
        outings: list[Segment] = []
        for window_h, chance in (((8.0, 10.0), 0.7), ((15.0, 17.0), 0.6)):
            if rng.random() < chance:
                start = d0 + int(rng.uniform(*window_h) * HOUR_MS)
                # As long as a walk to a place 200-900 m away and back, in the safe zone.
                far_m, heading = float(rng.uniform(200, 900)), float(rng.uniform(0, 2 * np.pi))
                length_m = 2 * far_m * (abs(math.cos(heading)) + abs(math.sin(heading)))
                walk = neighbourhood_walk(length_m, self.elder.safe_radius_m, rng)
                route = Route.of(walk)
                end = start + int(route.length_m / p.walk_speed_m_s * 1000)
                outings.append(Segment("walk", start, end, route, p.walk_speed_m_s))
        if p.dementia and rng.random() < p.wander_per_day:
            hour = rng.choice(24, p=WANDER_HOUR_WEIGHTS / WANDER_HOUR_WEIGHTS.sum())
            start = d0 + int((hour + rng.random()) * HOUR_MS)
            episode = wander_segments(start, (0.0, 0.0), p.walk_speed_m_s * 0.9, rng)
            outings = [o for o in outings if o.end_ms < start or o.start_ms > episode[-1].end_ms]
            outings += episode
        still = self._immobility(day, wake, bed)
        if still is not None:
            outings = [o for o in outings if o.end_ms < still.start_ms or o.start_ms > still.end_ms]
            outings.append(still)
        return self._fill(d0, wake, bed, sorted(outings, key=lambda s: s.start_ms))

    def _immobility(self, day: int, wake: int, bed: int) -> Segment | None:
        rng = np.random.default_rng([self._seed, self._key, day, 7])
        if not rng.random() < self.inactivity_per_day:
            return None
        start = int(rng.uniform(wake + HOUR_MS // 2, max(wake + HOUR_MS, bed - 2 * HOUR_MS)))
        end = min(start + draw_immobility_ms(rng), (day + 1) * DAY_MS - LOCAL_OFFSET_MS)
        return Segment("still", start, end, detail=f"hours={(end - start) / HOUR_MS:.2f}")

    @staticmethod
    def _fill(d0: int, wake: int, bed: int, outings: list[Segment]) -> list[Segment]:
        def gaps(a: int, b: int) -> list[Segment]:
            spans = (("sleep", d0, wake), ("home", wake, bed), ("sleep", bed, d0 + DAY_MS))
            return [
                Segment(k, max(a, lo), min(b, hi)) for k, lo, hi in spans if max(a, lo) < min(b, hi)
            ]

        out: list[Segment] = []
        cursor = d0
        for seg in outings:
            if seg.start_ms < cursor:
                continue
            out += gaps(cursor, seg.start_ms)
            out.append(seg)
            cursor = seg.end_ms
        return out + gaps(cursor, d0 + DAY_MS)

    def override(self, segments: list[Segment]) -> None:
        """Put injected segments on top of the plan (they win where they overlap)."""
        self._overrides = [o for o in self._overrides if o.end_ms > segments[0].start_ms - DAY_MS]
        self._overrides.extend(segments)

    def claim(self, seg: Segment) -> bool:
        """True the first time any of the elder's devices asks about `seg` (one record each)."""
        key = (seg.kind, seg.start_ms)
        if key in self._claimed:
            return False
        self._claimed.add(key)
        return True

    def segment_at(self, t_ms: int) -> Segment:
        """What the elder is doing at `t_ms`."""
        for seg in reversed(self._overrides):
            if seg.start_ms <= t_ms < seg.end_ms:
                return seg
        day = (t_ms + LOCAL_OFFSET_MS) // DAY_MS
        for seg in self._plan(day):
            if seg.start_ms <= t_ms < seg.end_ms:
                return seg
        return Segment("home", t_ms, t_ms + 60_000)

    def next_change_ms(self, t_ms: int) -> int:
        """When the current segment ends (or an override begins)."""
        end = self.segment_at(t_ms).end_ms
        for seg in self._overrides:
            if t_ms < seg.start_ms < end:
                end = seg.start_ms
        return end

    def local_xy(self, t_ms: int) -> tuple[float, float]:
        """Position in metres (east, north) from home."""
        return self.segment_at(t_ms).local_xy(t_ms)

    def position(self, t_ms: int) -> tuple[float, float]:
        """True (lat, lon) at `t_ms`."""
        x, y = self.local_xy(t_ms)
        return offset(self.elder.home_lat, self.elder.home_lon, x, y)

    def heart_rate(self, t_ms: int, rng: np.random.Generator) -> int:
        """Heart rate: resting baseline plus the activity's rise, reached with a ~1 min time
        constant from the previous activity's level, up or down (heart rate neither jumps when
        a walk starts nor drops at once when it ends)."""
        seg = self.segment_at(t_ms)
        before = self.segment_at(seg.start_ms - 1).kind if seg.start_ms > 0 else seg.kind
        lag = 1 - math.exp(-(t_ms - seg.start_ms) / 60_000)
        delta = (
            HR_DELTA_BPM.get(before, 0.0)
            + (HR_DELTA_BPM.get(seg.kind, 0.0) - HR_DELTA_BPM.get(before, 0.0)) * lag
        )
        return round(self.profile.rest_hr_bpm + delta + rng.normal(0, 2))

    def local_hour(self, t_ms: int) -> float:
        """Local (UTC+8) hour of day."""
        return ((t_ms + LOCAL_OFFSET_MS) % DAY_MS) / HOUR_MS
