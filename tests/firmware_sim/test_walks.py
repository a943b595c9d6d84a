"""Daily walks stay in the elder's safe zone; only wandering leaves it (no broker)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from alerting.engine import Engine as AlertEngine
from alerting.fall_model import load_fall_model
from alerting.model import Raise
from firmware_sim import Engine, generate_fleet
from firmware_sim.paths import WALK_REACH, neighbourhood_walk
from firmware_sim.routine import DAY_MS, LOCAL_OFFSET_MS, Routine, make_profile
from gateway import decode
from gateway.contract import AlertKind

# 2025-11-28 00:00 Beijing time, a fixed simulated day.
DAY0 = (1_764_300_000_000 + LOCAL_OFFSET_MS) // DAY_MS


def test_a_walk_keeps_its_length_inside_the_zone() -> None:
    rng = np.random.default_rng(3)
    for radius_m in (60.0, 300.0, 1000.0):
        for _ in range(200):
            length_m = float(rng.uniform(400, 2400))
            path = neighbourhood_walk(length_m, radius_m, rng)
            reach = np.hypot(path[:, 0], path[:, 1]).max()
            assert reach <= WALK_REACH * radius_m + 1e-6
            assert np.allclose(path[0], 0) and np.allclose(path[-1], 0)
            walked = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())
            # The last leg home may overshoot by up to a return trip across the square.
            assert length_m <= walked <= length_m + 2 * math.sqrt(2) * WALK_REACH * radius_m


def test_elders_walk_as_long_as_before_and_never_leave_the_zone() -> None:
    fleet = generate_fleet(300, seed=2)
    rng = np.random.default_rng(9)
    lengths, days = [], 0
    for n, elder in enumerate(fleet.elders):
        profile = replace(make_profile(rng, has_band=True), dementia=False)
        routine = Routine(elder, profile, seed=2, key=n)
        for day in range(DAY0, DAY0 + 3):
            days += 1
            for seg in routine._plan(day):
                if seg.kind == "walk":
                    assert seg.route is not None
                    pts = seg.route.points
                    assert np.hypot(pts[:, 0], pts[:, 1]).max() <= (
                        WALK_REACH * elder.safe_radius_m + 1e-6
                    )
                    lengths.append(seg.route.length_m)
    # A walk to a place 200-900 m away on the grid and back: 2 d (|cos| + |sin|), mean
    # 2 x 550 m x 4/pi = 1,401 m; 0.7 + 0.6 walks a day.
    assert 1300 < np.mean(lengths) < 1550
    assert 1.1 < len(lengths) / days < 1.5


def test_a_morning_of_walks_raises_no_wandering() -> None:
    """Band fixes of a district's morning walks through the alerting engine (the old walks,
    out and back 200-900 m with 300 m zones, raised 860 wandering triggers for 31 elders)."""
    fleet = generate_fleet(200, seed=4)
    start = (DAY0 * DAY_MS - LOCAL_OFFSET_MS) + 8 * 3_600_000  # 08:00-09:30 Beijing time
    sim = Engine(fleet, seed=4, start_ms=start - 600_000, rate_scale=0.0)
    model = load_fall_model()
    alerting = AlertEngine(fleet, model.classifier, start, fall_threshold=model.threshold)
    fixes = 0
    raised: list[Raise] = []
    for out in sim.advance(start + 90 * 60_000):
        if out.wire is None or not out.wire.topic.endswith("/telemetry"):
            continue
        if out.at_ms < start:
            continue
        message = decode(out.wire.topic, out.wire.payload, now_ms=out.at_ms)
        if type(message).__name__ != "BandTelemetry":
            continue
        fixes += 1
        for action in alerting.on_message(message, out.at_ms):
            if isinstance(action, Raise) and action.trigger.kind is AlertKind.WANDERING:
                raised.append(action)
    assert fixes > 500
    assert raised == []
