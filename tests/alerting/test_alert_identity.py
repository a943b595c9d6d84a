"""Deduplication by message identity (device_id, ts, seq), never by "newer than"."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from alerting import store
from alerting.engine import Engine
from alerting.lifecycle import AlertRow
from alerting.model import Raise, Trigger
from gateway import AlertKind, AlertStatus, BandTelemetry, DeviceType, Event, Severity, Status
from tests.alerting.helpers import (
    HOME,
    AlertListener,
    DevicePublisher,
    home_fix,
    prepare_db,
    running,
    settings_for,
    small_fleet,
)

T0 = 1_764_316_800_000
DAY_MS = 86_400_000


class _Never:
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), 2))


@pytest.fixture
def engine() -> Engine:
    return Engine(small_fleet("id"), _Never(), T0)


def _press(device_id: str, dtype: DeviceType, ts: int, seq: int, name: str = "press") -> Event:
    return Event(device_id=device_id, type=dtype, seq=seq, ts=ts, event=name)


def test_a_duplicate_is_dropped_for_its_device_only(engine: Engine) -> None:
    assert engine.on_message(_press("btn-id", DeviceType.BUTTON, T0, 5), T0)
    assert engine.on_message(_press("btn-id", DeviceType.BUTTON, T0, 5), T0 + 900) == []
    # Same ts and seq from another device, or the same ts with another seq: new messages.
    assert engine.on_message(_press("band-id", DeviceType.BAND, T0, 5, "sos"), T0 + 950)
    assert engine.on_message(_press("btn-id", DeviceType.BUTTON, T0, 6), T0 + 990)
    assert engine.stats.duplicates == 1


def test_remembered_identities_are_bounded(engine: Engine) -> None:
    def press(ts: int, seq: int, now: int) -> None:
        engine.on_message(_press("btn-id", DeviceType.BUTTON, ts, seq, "cancel"), now)

    for seq in range(3000):
        press(T0 + seq, seq, T0 + seq)
    assert engine._recent["btn-id"].seen.bit_length() <= 256
    press(T0 + 2999, 2999, T0 + 3000)  # the newest, again
    press(T0 + 2800, 2800, T0 + 3000)  # inside the window of 256
    assert engine.stats.duplicates == 2
    press(T0 + 2000, 2000, T0 + 3000)  # older than the window: cannot tell, taken as new
    assert engine.stats.duplicates == 2
    # Later even a recent identity is forgotten by the engine (the store keeps it).
    later = T0 + 2 * 3_600_000
    press(T0 + 2999, 2999, later)
    assert engine.stats.duplicates == 2


def test_identities_survive_a_clock_reset_and_a_counter_restart(engine: Engine) -> None:
    def press(ts: int, seq: int) -> None:
        engine.on_message(_press("btn-id", DeviceType.BUTTON, ts, seq, "cancel"), T0 + 10_000)

    for seq in range(10, 20):
        press(T0 + seq, seq)
    press(1_000 + 20, 20)  # the clock fell back to 1970; seq goes on: new
    press(1_000 + 20, 20)  # its redelivery
    press(T0 + 15, 15)  # a redelivery from before the reset
    assert engine.stats.duplicates == 2
    # A device whose counter restarted (against the contract), its clock still right: new.
    press(T0 + 5_000, 0)
    press(T0 + 5_001, 1)
    assert engine.stats.duplicates == 2
    press(T0 + 5_000, 0)
    assert engine.stats.duplicates == 3


def test_a_huge_seq_jump_costs_nothing_and_loses_nothing(engine: Engine) -> None:
    """Firmware that restarts its counter from the epoch in ms: no 2**40-bit window is built,
    and the next press is handled."""
    for seq, ts in ((5, T0), (2**40, T0 + 1_000), (2**40 + 1, T0 + 2_000)):
        assert engine.on_message(_press("btn-id", DeviceType.BUTTON, ts, seq), T0 + 3_000)
    assert engine._recent["btn-id"].seen.bit_length() <= 256
    assert engine.stats.duplicates == 0


def test_redeliveries_after_an_out_of_order_arrival_are_still_repeats(engine: Engine) -> None:
    """A cane stamps a window when it sends it: seq 11 may carry a later ts than seq 12."""
    for ts, seq in ((10_000, 10), (12_000, 12), (12_500, 11)):
        engine.on_message(_press("btn-id", DeviceType.BUTTON, T0 + ts, seq, "cancel"), T0 + 20_000)
    assert engine.stats.duplicates == 0
    for ts, seq in ((12_000, 12), (10_000, 10), (12_500, 11)):
        engine.on_message(_press("btn-id", DeviceType.BUTTON, T0 + ts, seq, "cancel"), T0 + 21_000)
    assert engine.stats.duplicates == 3


def _fix(seq: int, ts: int, steps: int, hr: int | None) -> BandTelemetry:
    return home_fix("band-id", seq, ts, steps=steps, hr_bpm=hr)


def test_the_steps_of_a_fix_cover_the_interval_since_the_bands_previous_message(
    engine: Engine,
) -> None:
    engine.on_message(_fix(1, T0, 0, 70), T0 + 100)
    engine.on_message(_fix(2, T0 + 270_000, 0, None), T0 + 270_100)  # no heart rate
    # 48 steps in the 30 s since seq 2 (96 a minute), not in the 5 minutes since seq 1.
    engine.on_message(_fix(3, T0 + 300_000, 48, 80), T0 + 300_100)
    baseline = engine.anomaly._elders[engine.device("band-id").elder_id]  # type: ignore[union-attr]
    assert baseline.per_band == [0, 0, 0, 0, 0, 1, 0]
    # seq 5 after seq 3: seq 4 was lost, so the interval its steps cover is unknown.
    engine.on_message(_fix(5, T0 + 330_000, 48, 80), T0 + 330_100)
    assert sum(baseline.per_band) == 1


def test_a_status_without_ts_never_places_a_trigger_at_the_epoch(engine: Engine) -> None:
    status = Status(device_id="band-id", type=DeviceType.BAND, online=True, battery_pct=9.0)
    (r,) = engine.on_message(status, T0 + 1234)
    assert isinstance(r, Raise) and r.trigger.kind is AlertKind.LOW_BATTERY
    assert r.trigger.event_ts == T0 + 1234


def test_a_retained_online_status_is_not_liveness(engine: Engine) -> None:
    status = Status(
        device_id="smoke-id", type=DeviceType.SMOKE, online=True, ts=T0, heartbeat_s=300
    )
    # The broker replays the dead detector's last retained status on a re-subscribe.
    assert engine.on_message(status, T0 + 700_000, retained=True) == []
    raised = {a.trigger.device_id for a in engine.tick(T0 + 750_000) if isinstance(a, Raise)}
    assert "smoke-id" in raised
    assert engine.stats.retained == 1


def test_a_retained_will_does_not_raise_offline_again(engine: Engine) -> None:
    live = Status(device_id="band-id", type=DeviceType.BAND, online=True, ts=T0, heartbeat_s=300)
    engine.on_message(live, T0 + 1000)
    will = Status(device_id="band-id", type=DeviceType.BAND, online=False)
    assert engine.on_message(will, T0 + 2000, retained=True) == []
    raised = [a for a in engine.tick(T0 + 200_000) if isinstance(a, Raise)]
    assert "band-id" not in {a.trigger.device_id for a in raised}


def test_message_triggers_carry_their_identity(engine: Engine) -> None:
    (r,) = engine.on_message(_press("btn-id", DeviceType.BUTTON, 5_000, 77), T0)
    assert isinstance(r, Raise) and (r.trigger.event_ts, r.trigger.event_seq) == (5_000, 77)


# The store, on the real database.


@pytest.fixture
def conn(schema_url: str) -> Iterator[psycopg.Connection[Any]]:
    prepare_db(schema_url, small_fleet("id"))
    with psycopg.connect(schema_url) as c:
        yield c


def _route(lat: float, lon: float) -> tuple[str, float, bool, bool]:
    return "cc-a-id", 100.0, True, False


def _locate(center_id: str, lat: float, lon: float) -> tuple[float, bool]:
    return 100.0, True


def _sos(device_id: str, ts: int, seq: int | None, kind: AlertKind = AlertKind.SOS) -> Raise:
    trig = Trigger(kind, Severity.CRITICAL, device_id, ts, "press", event_seq=seq)
    return Raise("el-id", trig, *HOME)


def _raise(
    conn: psycopg.Connection[Any], action: Raise, now_ms: int
) -> tuple[AlertRow, bool, bool] | None:
    return store.raise_alert(conn, action, _route, _locate, now_ms)


def _resolve(
    conn: psycopg.Connection[Any], result: tuple[AlertRow, bool, bool] | None, now_ms: int
) -> None:
    assert result is not None
    store.transition(conn, result[0].alert_id, AlertStatus.RESOLVED, "disp-1", "", now_ms)


def test_an_older_alert_with_a_later_device_time_never_hides_a_new_one(
    conn: psycopg.Connection[Any],
) -> None:
    # A cane whose clock runs 4 minutes fast raised (and staff closed) an SOS...
    first = _raise(conn, _sos("cane-id", T0 + 240_000, 10), T0)
    _resolve(conn, first, T0 + 30_000)
    # ...a minute later the band's SOS must page.
    second = _raise(conn, _sos("band-id", T0 + 60_000, 3), T0 + 60_000)
    assert isinstance(second, tuple) and second[1] is True


def test_a_button_reset_to_1970_raises_again(conn: psycopg.Connection[Any]) -> None:
    first = _raise(conn, _sos("btn-id", T0, 41), T0)
    _resolve(conn, first, T0 + 60_000)
    again = _raise(conn, _sos("btn-id", 5_000, 42), T0 + 3_600_000)
    assert isinstance(again, tuple) and again[1] is True and again[0].event_ts == 5_000


def test_a_replayed_message_raises_nothing_but_only_for_its_own_device(
    conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    first = _raise(conn, _sos("btn-id", T0, 7), T0)
    _resolve(conn, first, T0 + 10_000)
    with caplog.at_level("WARNING", logger="alerting.store"):
        assert _raise(conn, _sos("btn-id", T0, 7), T0 + 600_000) is None
    assert "suppressed sos trigger of btn-id" in caplog.text
    other = _raise(conn, _sos("band-id", T0, 7), T0 + 600_000)
    assert isinstance(other, tuple) and other[1] is True
    # The same message raises again once its identity has left the bounded window.
    _resolve(conn, other, T0 + 610_000)
    late = _raise(conn, _sos("btn-id", T0, 7), T0 + 2 * DAY_MS)
    assert isinstance(late, tuple) and late[1] is True


def test_a_replayed_message_does_not_count_as_a_repeat_of_its_active_alert(
    conn: psycopg.Connection[Any],
) -> None:
    _raise(conn, _sos("btn-id", T0, 7), T0)
    assert _raise(conn, _sos("btn-id", T0, 7), T0 + 5_000) is None
    (alert,) = store.active_alerts(conn)
    assert alert.trigger_count == 1 and alert.event_seq == 7


def test_a_tick_condition_is_raised_once_across_restarts(conn: psycopg.Connection[Any]) -> None:
    silent_since = T0 - 800_000
    off = _sos("band-id", silent_since, None, AlertKind.DEVICE_OFFLINE)
    first = _raise(conn, off, T0)
    _resolve(conn, first, T0 + 60_000)
    # A restarted service finds the same silence (same start): already seen to.
    assert _raise(conn, off, T0 + 120_000) is None
    # Another device of the elder, silent since before that alert: its own condition.
    sibling = _raise(
        conn, _sos("cane-id", silent_since + 1000, None, AlertKind.DEVICE_OFFLINE), T0 + 130_000
    )
    assert sibling is not None and sibling[1] is True
    _resolve(conn, sibling, T0 + 140_000)
    # The device came back and went silent again later: a new condition.
    again = _raise(
        conn, _sos("band-id", T0 + 200_000, None, AlertKind.DEVICE_OFFLINE), T0 + 1_000_000
    )
    assert isinstance(again, tuple) and again[1] is True


def test_repeated_triggers_count_and_change_only_what_staff_see(
    conn: psycopg.Connection[Any],
) -> None:
    created = _raise(conn, _sos("btn-id", T0, 1), T0)
    assert isinstance(created, tuple) and created[1:] == (True, True)
    counts = []
    for k in range(2, 51):
        result = _raise(conn, _sos("btn-id", T0 + k * 100, k), T0 + k * 100)
        assert result is not None and result[1:] == (False, False)
        counts.append(result[0].trigger_count)
    assert counts == list(range(2, 51))
    moved = Raise("el-id", _sos("btn-id", T0 + 6000, 60).trigger, HOME[0] + 0.001, HOME[1])
    result = _raise(conn, moved, T0 + 6000)
    assert isinstance(result, tuple) and result[2] is True  # ~110 m: staff see a new place


def test_through_the_service_a_fast_cane_never_hides_the_band_sos(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    now = int(time.time() * 1000)
    try:
        with running(settings_for(mqtt_url, schema_url, topic_prefix)):
            # The cane's clock runs 4 minutes fast (inside the contract's 5-minute window).
            cane = f"cane-{device_suffix}"
            devices.send(_press(cane, DeviceType.CANE, now + 240_000, 1, "sos"))
            _, first, _ = listener.wait_for(lambda t, m: m.kind is AlertKind.SOS)
            with psycopg.connect(schema_url) as c:
                store.transition(
                    c, first.alert_id, AlertStatus.RESOLVED, "disp-1", "false alarm", now + 1
                )
            band = f"band-{device_suffix}"
            devices.send(_press(band, DeviceType.BAND, now + 1_000, 1, "sos"))
            _, second, _ = listener.wait_for(
                lambda t, m: m.kind is AlertKind.SOS and m.alert_id != first.alert_id
            )
        assert second.device_id == band and second.status is AlertStatus.OPEN
    finally:
        devices.close()
        listener.close()


def _quiet_elder(start_ms: int, until_ms: int) -> tuple[Engine, list[Raise]]:
    """An engine fed an hour of walking then stillness, ticked every minute to `until_ms`."""
    engine = Engine(small_fleet("id"), _Never(), start_ms)
    raised: list[Raise] = []
    for k in range(120):
        t = start_ms + k * 30_000
        engine.on_message(_fix(k, t, 40, None), t + 100)
    for now in range(start_ms + 3_600_000, until_ms, 60_000):
        raised += [
            a
            for a in engine.tick(now)
            if isinstance(a, Raise) and a.trigger.kind is AlertKind.INACTIVITY
        ]
    return engine, raised


def test_inactivity_resolved_by_staff_is_not_raised_again_by_a_restart(
    conn: psycopg.Connection[Any],
) -> None:
    start = 1_764_367_200_000  # 06:00 in the district: the quiet falls in the daytime
    _, (first,) = _quiet_elder(start, start + 6 * 3_600_000)
    raised_at = start + 5 * 3_600_000
    result = _raise(conn, first, raised_at)
    assert result is not None and result[1] is True
    _resolve(conn, result, raised_at + 60_000)
    # A restarted service rebuilds the same history and finds the same quiet.
    _, (again,) = _quiet_elder(start, start + 6 * 3_600_000)
    assert again.trigger.event_ts <= first.trigger.event_ts < raised_at
    assert _raise(conn, again, raised_at + 600_000) is None
