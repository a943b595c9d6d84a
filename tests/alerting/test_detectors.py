"""Table tests of the pure detectors on crafted messages, windows and tracks (device time)."""

from __future__ import annotations

import pytest

from alerting.detectors import (
    AnomalyDetector,
    HealthDetector,
    InactivityDetector,
    SafeZone,
    SosDetector,
    WanderingDetector,
)
from alerting.model import Clear, Trigger
from gateway import AlertKind, AlertStatus, DeviceType, Event, Severity, Status

T0 = 1_764_316_800_000  # 2025-11-28 16:00 local (UTC+8), daytime
NIGHT = T0 + 8 * 3_600_000  # 00:00 local


def _event(dev: str, dtype: DeviceType, name: str, ts: int, seq: int = 0) -> Event:
    return Event(device_id=dev, type=dtype, seq=seq, ts=ts, event=name)


@pytest.mark.parametrize(
    ("dtype", "name", "raised"),
    [
        (DeviceType.BUTTON, "press", True),
        (DeviceType.BUTTON, "long_press", True),
        (DeviceType.BAND, "sos", True),
        (DeviceType.CANE, "sos", True),
        (DeviceType.BAND, "worn", False),
        (DeviceType.CANE, "fall_detected", False),
    ],
    ids=["press", "long", "band", "cane", "worn", "fall-hint"],
)
def test_sos_raises_immediately(dtype: DeviceType, name: str, raised: bool) -> None:
    found = SosDetector().on_event(_event("dev-1", dtype, name, T0))
    assert bool(found) is raised
    if raised:
        (t,) = found
        assert isinstance(t, Trigger) and t.kind is AlertKind.SOS and t.event_ts == T0
        assert t.severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("after_s", "cancelled"), [(5, True), (30, True), (31, False)], ids=["5s", "30s", "late"]
)
def test_sos_cancel_within_grace(after_s: int, cancelled: bool) -> None:
    det = SosDetector(grace_s=30)
    det.on_event(_event("btn-1", DeviceType.BUTTON, "press", T0))
    found = det.on_event(_event("btn-1", DeviceType.BUTTON, "cancel", T0 + after_s * 1000, 1))
    assert bool(found) is cancelled
    if cancelled:
        assert isinstance(found[0], Clear) and found[0].status is AlertStatus.CANCELLED


def test_sos_cancel_from_another_button_does_nothing() -> None:
    det = SosDetector()
    det.on_event(_event("btn-1", DeviceType.BUTTON, "press", T0))
    assert det.on_event(_event("btn-2", DeviceType.BUTTON, "cancel", T0 + 1000)) == []


def _fixes(det: WanderingDetector, track: list[tuple[float, float]], t0: int) -> list[int]:
    hits = []
    for i, (dist, hacc) in enumerate(track):
        lat = 39.93 + dist / 111_195.0
        if det.on_fix("band-1", t0 + i * 30_000, lat, 116.37, hacc):
            hits.append(i)
    return hits


ZONE = SafeZone(39.93, 116.37, 300.0)


@pytest.mark.parametrize(
    ("track", "t0", "first_hit"),
    [
        ([(100, 10), (350, 10), (420, 10), (500, 10)], T0, 2),
        ([(100, 10), (350, 10), (420, 10)], NIGHT, 1),
        ([(100, 10), (320, 40), (330, 40), (340, 40), (350, 40)], T0, 3),
        ([(100, 10), (320, 40), (330, 40)], NIGHT, 2),
    ],
    ids=["day-clear", "night-clear", "day-noisy", "night-noisy"],
)
def test_wandering_persistence(track: list[tuple[float, float]], t0: int, first_hit: int) -> None:
    det = WanderingDetector({"band-1": ZONE})
    hits = _fixes(det, track, t0)
    assert hits and hits[0] == first_hit


@pytest.mark.parametrize(
    "track",
    [
        [(250, 60), (340, 60), (260, 60), (330, 60), (280, 60)],
        [(100, 10), (900, 400), (100, 10)],
        [(290, 20)] * 10,
    ],
    ids=["edge-jitter", "bad-fix", "near-edge"],
)
def test_wandering_ignores_gps_noise(track: list[tuple[float, float]]) -> None:
    det = WanderingDetector({"band-1": ZONE})
    assert _fixes(det, track, T0) == []


def test_wandering_alert_carries_last_position() -> None:
    det = WanderingDetector({"band-1": ZONE})
    _fixes(det, [(400, 10)], T0)
    (t,) = det.on_fix("band-1", T0 + 30_000, 39.9345, 116.3712, 8.0)
    assert isinstance(t, Trigger) and (t.lat, t.lon) == (39.9345, 116.3712)


def _status(dev: str, online: bool, ts: int | None = None) -> Status:
    return Status(device_id=dev, type=DeviceType.BAND, online=online, ts=ts, heartbeat_s=60)


def test_offline_by_silence_exactly_after_two_and_a_half_heartbeats() -> None:
    det = HealthDetector({}, {})
    det.watch("band-1", DeviceType.BAND, 60, T0)
    assert det.tick(T0 + 149_999) == []
    (t,) = det.tick(T0 + 150_000)
    assert isinstance(t, Trigger) and t.kind is AlertKind.DEVICE_OFFLINE
    assert det.tick(T0 + 400_000) == []  # one alert until it recovers
    (c,) = det.on_message(_status("band-1", True, T0 + 401_000), T0 + 401_000)
    assert isinstance(c, Clear) and c.status is AlertStatus.RESOLVED


def test_reboot_within_will_grace_does_not_page() -> None:
    det = HealthDetector({}, {}, will_grace_s=60)
    det.watch("band-1", DeviceType.BAND, 300, T0)
    assert det.on_message(_status("band-1", False), T0) == []
    assert det.on_message(_status("band-1", True, T0 + 30_000), T0 + 30_000) == []
    assert det.tick(T0 + 120_000) == []


def test_last_will_then_battery_hysteresis() -> None:
    det = HealthDetector({}, {}, will_grace_s=60)
    det.watch("band-1", DeviceType.BAND, 300, T0)
    assert det.on_message(_status("band-1", False), T0 + 1000) == []
    assert det.tick(T0 + 60_999) == []
    (t,) = det.tick(T0 + 61_000)
    assert isinstance(t, Trigger) and "last will" in t.reason
    assert det.on_message(_status("band-1", False), T0 + 62_000) == []
    ev = Event(
        device_id="band-1", type=DeviceType.BAND, seq=1, ts=T0, event="worn", battery_pct=12.0
    )
    kinds = [f.kind for f in det.on_message(ev, T0 + 3000)]
    assert kinds == [AlertKind.DEVICE_OFFLINE, AlertKind.LOW_BATTERY]
    for pct, expect in ((20.0, []), (14.0, []), (31.0, [AlertKind.LOW_BATTERY])):
        ev = Event(
            device_id="band-1", type=DeviceType.BAND, seq=2, ts=T0, event="worn", battery_pct=pct
        )
        assert [f.kind for f in det.on_message(ev, T0 + 4000)] == expect


def test_inactivity_against_baseline_and_fallback() -> None:
    det = InactivityDetector()
    det.set_baseline("el-1", [400.0] * 24)
    det.on_movement("el-1", "band-1", T0 - 4 * 3_600_000, 500)
    for k in range(12):
        det.on_movement("el-1", "band-1", T0 - 3 * 3_600_000 + k * 900_000, 5)
    (t,) = det.tick(T0)
    assert isinstance(t, Trigger) and t.kind is AlertKind.INACTIVITY
    (c,) = det.on_movement("el-1", "band-1", T0 + 600_000, 150)
    assert isinstance(c, Clear)
    # An elder who moves as usual is left alone.
    busy = InactivityDetector()
    busy.set_baseline("el-2", [400.0] * 24)
    for k in range(16):
        busy.on_movement("el-2", "band-2", T0 - 4 * 3_600_000 + k * 900_000, 100)
    assert busy.tick(T0) == []
    # No baseline: no movement at all for 4 h in the daytime.
    new = InactivityDetector()
    new.on_movement("el-3", "band-3", T0 - 5 * 3_600_000, 0)
    assert [f.kind for f in new.tick(T0)] == [AlertKind.INACTIVITY]


def test_anomaly_learns_the_elder_and_flags_outliers() -> None:
    det = AnomalyDetector()
    found = []
    for k in range(300):
        hr = 68 + (k % 7) - 3
        found += det.on_sample("el-1", "band-1", T0 + k * 300_000, hr, 20 + k % 5)
    assert found == []
    # A racing heart sitting still: two readings in a row (a single one may be an artefact).
    assert det.on_sample("el-1", "band-1", T0 + 300 * 300_000, 118, 0) == []
    (odd,) = det.on_sample("el-1", "band-1", T0 + 301 * 300_000, 118, 0)
    assert odd.severity is Severity.LOW
    (extreme,) = det.on_sample("el-2", "band-2", T0, 35, 0)
    assert extreme.severity is Severity.HIGH
