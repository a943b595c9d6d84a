"""Smoke verification: every crossing pages at once as unverified; fires are confirmed and stay,
nuisances that clear within the verification period close themselves as `nuisance`."""

from __future__ import annotations

import math

import pytest

from alerting.detectors import SmokeDetector
from alerting.detectors.smoke import VERIFY_S
from alerting.lifecycle import AUTO_CLOSABLE
from alerting.model import Clear, Finding, Trigger
from gateway import AlertKind, AlertStatus, DeviceType, Event, Severity, SmokeTelemetry

T0 = 1_764_316_800_000


def _event(name: str, ts: int) -> Event:
    return Event(device_id="smk-1", type=DeviceType.SMOKE, seq=0, ts=ts, event=name)


def _run(
    det: SmokeDetector, series: list[float], t0: int = T0, step_s: int = 5, temp_c: float = 22.0
) -> list[tuple[int, Finding]]:
    """Feed readings every `step_s`; return (index, finding) for everything that came out."""
    out = []
    for i, db_m in enumerate(series):
        msg = SmokeTelemetry(
            device_id="smk-1",
            type=DeviceType.SMOKE,
            seq=i,
            ts=t0 + i * step_s * 1000,
            smoke_db_m=db_m,
            temp_c=temp_c,
        )
        out.extend((i, f) for f in det.on_reading(msg))
    return out


def _fire(rise_s: float) -> list[float]:
    """A t-squared fire reaching 0.05 dB/m at rise_s, sampled every 5 s from 0.02 dB/m."""
    start = 0.632 * rise_s
    return [0.05 * ((start + 5 * k) / rise_s) ** 2 for k in range(40)]


def _peak(top: float, rise_s: float, hold_s: float, decay_s: float = 60.0) -> list[float]:
    """Raised-cosine rise, a hold, then exponential decay: a cooking or shower peak."""
    series = []
    for k in range(200):
        t = 5 * k
        if t < rise_s:
            shape = (1 - math.cos(math.pi * t / rise_s)) / 2
        else:
            shape = 1.0 if t < rise_s + hold_s else math.exp(-(t - rise_s - hold_s) / decay_s)
        series.append(top * shape)
    return series


@pytest.mark.parametrize("rise_s", [60, 120, 240], ids=["fast", "medium", "slow"])
def test_fire_pages_at_the_crossing_and_is_verified_never_closed(rise_s: float) -> None:
    series = _fire(rise_s)
    first_over = next(i for i, v in enumerate(series) if v >= 0.05)
    found = _run(SmokeDetector(), series)
    i, first = found[0]
    assert i == first_over and isinstance(first, Trigger)
    assert first.kind is AlertKind.SMOKE and first.severity is Severity.CRITICAL
    assert any(isinstance(f, Trigger) and f.reason.startswith("fire") for _, f in found)
    assert not any(isinstance(f, Clear) for _, f in found)


@pytest.mark.parametrize(
    ("top", "rise_s", "hold_s"),
    [(0.055, 180, 20), (0.07, 60, 40), (0.12, 30, 10)],
    ids=["just-over", "steam", "toast"],
)
def test_transient_nuisance_pages_unverified_then_closes_itself(
    top: float, rise_s: float, hold_s: float
) -> None:
    series = _peak(top, rise_s, hold_s, decay_s=20.0)
    found = _run(SmokeDetector(), series)
    (i_raise, raised), *_, (i_close, closed) = found
    assert isinstance(raised, Trigger)
    assert all(isinstance(f, Trigger) and "fire:" not in f.reason for _, f in found[:-1])
    assert raised.severity is Severity.CRITICAL
    assert i_raise == next(i for i, v in enumerate(series) if v >= 0.05)
    assert isinstance(closed, Clear) and closed.status is AlertStatus.RESOLVED
    assert closed.kind is AlertKind.SMOKE and closed.note.startswith("nuisance:")
    assert (i_close - i_raise) * 5 <= VERIFY_S
    assert AlertKind.SMOKE in AUTO_CLOSABLE


def test_nuisance_that_outlasts_the_verification_period_is_left_to_a_person() -> None:
    series = _peak(0.065, 60.0, VERIFY_S + 60.0, decay_s=20.0)
    found = _run(SmokeDetector(), series)
    assert found and not any(isinstance(f, Clear) for _, f in found)


def test_a_rising_crossing_is_confirmed_as_fire_even_after_an_unverified_start() -> None:
    det = SmokeDetector()
    found = _run(det, [0.049, 0.0495, 0.051, 0.0505, 0.0502])
    assert [f.reason.split(":")[0] for _, f in found if isinstance(f, Trigger)] == ["unverified"]
    # The fire takes off: confirmed, and its fading smoke no longer closes it.
    later = _run(det, [0.06, 0.075, 0.12, 0.21, 0.03], t0=T0 + 25_000)
    assert any(isinstance(f, Trigger) and f.reason.startswith("fire:") for _, f in later)
    assert not any(isinstance(f, Clear) for _, f in later)


def test_the_detector_clear_and_hush_close_an_unverified_alert_as_nuisance() -> None:
    det = SmokeDetector()
    (raised,) = det.on_event(_event("alarm", T0))
    assert isinstance(raised, Trigger) and raised.reason.startswith("unverified:")
    (closed,) = det.on_event(_event("hush", T0 + 30_000))
    assert isinstance(closed, Clear) and closed.note.startswith("nuisance: hushed")
    # Hushed: a slow crossing does not page; fire-level obscuration always does.
    assert _run(det, [0.05, 0.051, 0.052, 0.053], t0=T0 + 40_000) == []
    ((_, fire),) = _run(det, [0.25], t0=T0 + 90_000)
    assert isinstance(fire, Trigger) and fire.reason.startswith("fire:")


def test_an_alert_restored_after_a_restart_is_never_auto_closed() -> None:
    det = SmokeDetector()
    det.mark_alerted("smk-1")
    assert _run(det, [0.06, 0.01]) == []


def test_the_room_rearms_after_a_clear_so_the_next_crossing_pages_again() -> None:
    det = SmokeDetector()
    series = [0.06, 0.01] * 3
    kinds = [type(f).__name__ for _, f in _run(det, series, step_s=5)]
    assert kinds == ["Trigger", "Clear"] * 3
