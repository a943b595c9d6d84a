"""Wandering over many simulated excursions: alerted by the second fix outside the zone when one
of the two is clear of the GPS noise, whatever the order, and unaffected by delivery delays."""

from __future__ import annotations

import numpy as np
import pytest

from alerting.detectors import SafeZone, WanderingDetector
from alerting.engine import Engine
from alerting.model import Raise
from firmware_sim.geo import offset
from firmware_sim.paths import Route, sample_wander, wander_path
from firmware_sim.wearables import gps_fix
from gateway import AlertKind, BandTelemetry, DeviceType
from gateway.geo import distance_m
from tests.alerting.helpers import HOME, small_fleet

T0 = 1_764_316_800_000  # 16:00 local, daytime
NIGHT = T0 + 8 * 3_600_000
RADIUS_M = 300.0
FIX_S = 30  # a moving band's report interval (firmware_sim.wearables.BandModel)


class _Never:
    def predict_proba(self, x: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
        return np.zeros((len(x), 2))


def _lat(dist_m: float) -> float:
    return HOME[0] + dist_m / 111_195.0


@pytest.mark.parametrize(
    ("track", "t0", "first_hit"),
    [
        ([(100, 10), (360, 10), (310, 40)], T0, 2),
        ([(100, 10), (310, 40), (360, 10)], T0, 2),
        ([(100, 10), (310, 40), (320, 40), (330, 40)], T0, 3),
        ([(100, 10), (310, 40), (320, 40)], NIGHT, 2),
    ],
    ids=["day-clear-then-noisy", "day-noisy-then-clear", "day-noisy-only", "night-noisy"],
)
def test_two_fixes_outside_of_which_either_is_clear_raise_by_day(
    track: list[tuple[float, float]], t0: int, first_hit: int
) -> None:
    det = WanderingDetector({"band-1": SafeZone(HOME[0], HOME[1], RADIUS_M)})
    hits = [
        i
        for i, (dist, hacc) in enumerate(track)
        if det.on_fix("band-1", t0 + i * FIX_S * 1000, _lat(dist), HOME[1], hacc)
    ]
    assert hits and hits[0] == first_hit


def _excursion(seed: int) -> list[tuple[float, float, float]]:
    """Band fixes (lat, lon, hacc) every 30 s along a simulated wandering path from home."""
    rng = np.random.default_rng([seed, 77])
    pattern, _ = sample_wander(rng)
    route = Route.of(wander_path(pattern, 1500.0, rng))
    speed_m_s = float(rng.uniform(0.6, 1.0))
    base_hacc_m = float(rng.lognormal(np.log(10.0), 0.3))
    fixes = []
    for k in range(int(min(route.length_m, 3000.0) / speed_m_s / FIX_S)):
        east, north = route.at(k * FIX_S * speed_m_s)
        lat, lon = offset(HOME[0], HOME[1], east, north)
        fixes.append(gps_fix(rng, lat, lon, base_hacc_m))
    return fixes


def test_over_many_excursions_every_clear_pair_outside_is_alerted_at_its_second_fix() -> None:
    pairs = alerted_by_second = excursions = 0
    for seed in range(300):
        det = WanderingDetector({"band-1": SafeZone(HOME[0], HOME[1], RADIUS_M)})
        beyond, alerted_at = [], None
        for k, (lat, lon, hacc) in enumerate(_excursion(seed)):
            beyond.append((distance_m(HOME[0], HOME[1], lat, lon) - RADIUS_M, hacc))
            if det.on_fix("band-1", T0 + k * FIX_S * 1000, lat, lon, hacc) and alerted_at is None:
                alerted_at = k
        outside = [k for k, (b, _) in enumerate(beyond) if b > 0]
        if not outside:
            continue
        excursions += 1
        # The first pair of consecutive outside fixes with one of them clear must raise.
        pair = next(
            (
                k
                for k in range(1, len(beyond))
                if beyond[k - 1][0] > 0
                and beyond[k][0] > 0
                and any(b > h for b, h in beyond[k - 1 : k + 1])
            ),
            None,
        )
        if pair is not None:
            pairs += 1
            assert alerted_at is not None and alerted_at <= pair, f"seed {seed}"
        second_outside = outside[1] if len(outside) > 1 else outside[0]
        alerted_by_second += alerted_at is not None and alerted_at <= second_outside
    assert excursions >= 250 and pairs >= 250
    # Measured 0.817 over these 300 excursions (0.770 when only the last fix could be the
    # clear one); the rest walk along the edge, in and out within the GPS noise.
    assert alerted_by_second / excursions >= 0.80


def test_at_home_gps_noise_never_raises() -> None:
    det = WanderingDetector({"band-1": SafeZone(HOME[0], HOME[1], RADIUS_M)})
    rng = np.random.default_rng(5)
    raised = 0
    for k in range(20_000):
        # Somewhere in the home block or the lane outside it, well inside the zone.
        east, north = rng.uniform(-150.0, 150.0, 2)
        lat, lon, hacc = gps_fix(rng, *offset(HOME[0], HOME[1], float(east), float(north)), 12.0)
        raised += bool(det.on_fix("band-1", T0 + k * FIX_S * 1000, lat, lon, hacc))
    assert raised == 0


@pytest.mark.parametrize("max_delay_s", [0.0, 20.0, 120.0], ids=["none", "20s", "120s"])
def test_delivery_delays_do_not_drop_band_fixes_or_change_the_decisions(
    max_delay_s: float,
) -> None:
    """Under load every fix reaches the engine late by a varying delay (one connection per
    device keeps them in order): the clock correction moves, but no fix is taken for an old
    one and every excursion raises at the same fix as with no delay at all."""
    fleet = small_fleet("w1")
    rng = np.random.default_rng(11)
    for seed in range(40):
        engine = Engine(fleet, _Never(), T0 - 3_600_000)
        received_ms = 0
        raised_at = None
        for k, (lat, lon, hacc) in enumerate(_excursion(seed)):
            ts = T0 + k * FIX_S * 1000
            received_ms = max(received_ms, ts + int(rng.uniform(0.0, max_delay_s) * 1000))
            fix = BandTelemetry(
                device_id="band-w1",
                type=DeviceType.BAND,
                seq=k,
                ts=ts,
                lat=lat,
                lon=lon,
                hacc_m=hacc,
            )
            actions = engine.on_message(fix, received_ms)
            wandering = [
                a for a in actions if isinstance(a, Raise) and a.trigger.kind is AlertKind.WANDERING
            ]
            if wandering and raised_at is None:
                raised_at = k
        assert engine.stats.late_fixes == 0
        reference = WanderingDetector({"band-w1": SafeZone(HOME[0], HOME[1], RADIUS_M)})
        expected = next(
            (
                k
                for k, (lat, lon, hacc) in enumerate(_excursion(seed))
                if reference.on_fix("band-w1", T0 + k * FIX_S * 1000, lat, lon, hacc)
            ),
            None,
        )
        assert raised_at == expected, f"seed {seed}"
