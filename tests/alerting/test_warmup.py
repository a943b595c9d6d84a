"""Warm-up of learned detector state from stored band readings (pure, injected times)."""

from __future__ import annotations

import pytest

from alerting.detectors.inactivity import HOUR_MS
from alerting.engine import Engine
from alerting.fall_model import load_fall_model
from alerting.model import Raise
from alerting.warmup import BandSample, clock_offsets_ms, movement_window_ms, warm_up
from gateway.contract import AlertKind
from tests.alerting.helpers import small_fleet

# 2026-01-05 12:00 in Beijing (UTC+8): daytime for the no-baseline inactivity rule.
NOON_MS = 1_767_585_600_000


def _engine(suffix: str, now_ms: int) -> Engine:
    model = load_fall_model(None)
    return Engine(small_fleet(suffix), model.classifier, now_ms, fall_threshold=model.threshold)


def _quiet_band(suffix: str, now_ms: int, hours: float, *, skew_ms: int = 0) -> list[BandSample]:
    """A band reporting no steps every 300 s for `hours` up to `now_ms`."""
    start = now_ms - int(hours * HOUR_MS)
    return [
        BandSample(f"band-{suffix}", t + 300, t + skew_ms, 0.0, 70.0, True)
        for t in range(start, now_ms, 300_000)
    ]


@pytest.mark.parametrize("skew_ms", [0, -86_400_000, 240_000, -20_000], ids=str)
def test_inactive_elder_alerted_at_the_first_tick_after_warm_up(skew_ms: int) -> None:
    now = NOON_MS
    engine = _engine("w1", now)
    samples = _quiet_band("w1", now - 60_000, 4.5, skew_ms=skew_ms)
    stats = warm_up(engine, samples, now - movement_window_ms(engine))
    assert stats.movements >= 4 * 12
    raised = [a for a in engine.tick(now) if isinstance(a, Raise)]
    assert [a.trigger.kind for a in raised] == [AlertKind.INACTIVITY]


def test_without_warm_up_the_same_elder_waits_hours() -> None:
    now = NOON_MS
    engine = _engine("w2", now)
    assert [a for a in engine.tick(now) if isinstance(a, Raise)] == []


def test_movement_in_the_window_keeps_the_elder_unalerted() -> None:
    now = NOON_MS
    engine = _engine("w3", now)
    samples = _quiet_band("w3", now - 60_000, 4.5)
    walked = samples[-10]
    samples[-10] = BandSample(
        walked.device_id, walked.received_ms, walked.device_ts_ms, 400.0, 90.0, True
    )
    warm_up(engine, samples, now - movement_window_ms(engine))
    assert [a for a in engine.tick(now) if isinstance(a, Raise)] == []


def test_old_readings_teach_anomaly_but_not_movement() -> None:
    now = NOON_MS
    engine = _engine("w4", now)
    samples = _quiet_band("w4", now - 6 * HOUR_MS, 20)
    # Stored readings come newest first (ingest.readback): each band's are put in order.
    stats = warm_up(engine, samples[::-1], now - movement_window_ms(engine))
    assert stats.movements == 0 and stats.anomaly_samples == len(samples)
    elder = engine.device("band-w4").elder_id  # type: ignore[union-attr]
    assert engine.anomaly._elders[elder].total == len(samples) - 1  # the first: no interval
    assert engine.anomaly.baselines() == 1
    # Old history alone does not start the movement clock: nothing to alert on yet.
    assert [a for a in engine.tick(now) if isinstance(a, Raise)] == []


def test_clock_offset_is_the_fastest_delivery_and_ignores_a_late_replay() -> None:
    samples = [
        BandSample("b", 10_000 + 250, 10_000 - 30_000, 0.0, None, None),
        BandSample("b", 20_000 + 180, 20_000 - 30_000, 0.0, None, None),
        # A gateway replaying its buffer 40 minutes late.
        BandSample("b", 30_000 + 2_400_000, 30_000 - 30_000, 0.0, None, None),
    ]
    assert clock_offsets_ms(samples) == {"b": 30_180}
