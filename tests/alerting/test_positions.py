"""Alert positions: the newest plausible fix by device time, never null island or a replay."""

from __future__ import annotations

import numpy as np
import pytest

from alerting.engine import Engine
from alerting.model import Action, Raise
from gateway import AlertKind, BandTelemetry, CaneTelemetry, DeviceType, Event
from tests.alerting.helpers import HOME, small_fleet

T0 = 1_764_316_800_000  # 16:00 in the district: the daytime wandering rule
NEAR = (HOME[0] + 0.0009, HOME[1])  # ~100 m from home, inside the safe zone


class _Never:
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), 2))


@pytest.fixture
def engine() -> Engine:
    return Engine(small_fleet("po"), _Never(), T0)


def _fix(seq: int, ts: int, lat: float, lon: float, hacc_m: float = 8.0) -> BandTelemetry:
    return BandTelemetry(
        device_id="band-po", type=DeviceType.BAND, seq=seq, ts=ts, lat=lat, lon=lon, hacc_m=hacc_m
    )


def _sos(engine: Engine, device_id: str, dtype: DeviceType, seq: int, at: int) -> Raise:
    actions = engine.on_message(
        Event(device_id=device_id, type=dtype, seq=seq, ts=at, event="sos"), at
    )
    (r,) = [a for a in actions if isinstance(a, Raise) and a.trigger.kind is AlertKind.SOS]
    return r


def _wandering(actions: list[Action]) -> list[Raise]:
    return [a for a in actions if isinstance(a, Raise) and a.trigger.kind is AlertKind.WANDERING]


@pytest.mark.parametrize(
    ("lat", "lon", "hacc_m"),
    [
        (0.0, 0.0, 8.0),  # no GPS lock
        (HOME[0], HOME[1] + 0.9, 8.0),  # ~77 km east: far from home and every centre
        (HOME[0] + 0.02, HOME[1], 5_000.0),  # a 5 km accuracy circle is no fix
    ],
    ids=["null-island", "far-away", "absurd-accuracy"],
)
def test_an_implausible_fix_never_places_an_alert_nor_raises_wandering(
    engine: Engine, lat: float, lon: float, hacc_m: float
) -> None:
    engine.on_message(_fix(1, T0, *NEAR), T0 + 100)
    found: list[Action] = []
    for k in range(2, 6):
        found += engine.on_message(_fix(k, T0 + k * 30_000, lat, lon, hacc_m), T0 + k * 30_000)
    assert _wandering(found) == []
    r = _sos(engine, "band-po", DeviceType.BAND, 9, T0 + 200_000)
    assert (r.lat, r.lon) == NEAR
    assert engine.stats.implausible_fixes == 4


def test_a_plausible_fix_far_from_home_still_counts(engine: Engine) -> None:
    where = (HOME[0] + 0.09, HOME[1])  # ~10 km: a trip, not a receiver fault
    engine.on_message(_fix(1, T0, *where), T0 + 100)
    r = _sos(engine, "band-po", DeviceType.BAND, 2, T0 + 1000)
    assert (r.lat, r.lon) == where


def test_a_replayed_old_buffer_never_moves_the_position_back(engine: Engine) -> None:
    engine.on_message(_fix(100, T0, *NEAR), T0 + 100)
    # A gateway replays fixes from 40 minutes ago, 2 km away.
    old = (HOME[0] + 0.018, HOME[1])
    for k in range(5):
        t = T0 - 2_400_000 + k * 30_000
        engine.on_message(_fix(20 + k, t, *old), T0 + 1000 + k)
    r = _sos(engine, "band-po", DeviceType.BAND, 101, T0 + 5000)
    assert (r.lat, r.lon) == NEAR
    assert engine.stats.late_fixes == 5


def test_a_band_without_a_fix_leaves_the_alert_at_home(engine: Engine) -> None:
    engine.on_message(_fix(1, T0, 0.0, 0.0), T0 + 100)
    r = _sos(engine, "band-po", DeviceType.BAND, 2, T0 + 1000)
    assert (r.lat, r.lon) == HOME


def test_a_cane_window_at_null_island_is_not_a_position(engine: Engine) -> None:
    window = CaneTelemetry(
        device_id="cane-po",
        type=DeviceType.CANE,
        seq=1,
        ts=T0,
        rate_hz=50,
        accel_g=((0.0, 0.0, 1.0),) * 100,
        lat=0.0,
        lon=0.0,
        hacc_m=10.0,
    )
    engine.on_message(window, T0 + 100)
    r = _sos(engine, "cane-po", DeviceType.CANE, 2, T0 + 1000)
    assert (r.lat, r.lon) == HOME
