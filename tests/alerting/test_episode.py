"""One alert per episode: a condition staff closed while it lasts does not page again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from alerting import store
from alerting.engine import Engine
from alerting.lifecycle import AlertRow
from alerting.model import Action, Close, Raise
from gateway import (
    AlertKind,
    AlertStatus,
    BandTelemetry,
    DeviceType,
    Event,
    SmokeTelemetry,
    Status,
)
from tests.alerting.helpers import HOME, prepare_db, small_fleet

T0 = 1_764_316_800_000
FIX_MS = 60_000  # a band's fix interval
READING_MS = 5_000  # a smoke detector's reading interval
OUTSIDE = (HOME[0] + 0.01, HOME[1])  # ~1.1 km north of home, the safe zone is 300 m
INSIDE = HOME


class _Never:
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), 2))


@pytest.fixture
def engine() -> Engine:
    return Engine(small_fleet("ep"), _Never(), T0)


@pytest.fixture
def conn(schema_url: str) -> Iterator[psycopg.Connection[Any]]:
    prepare_db(schema_url, small_fleet("ep"))
    with psycopg.connect(schema_url) as c:
        yield c


def _route(lat: float, lon: float) -> tuple[str, float, bool, bool]:
    return "cc-a-ep", 100.0, True, False


def _locate(center_id: str, lat: float, lon: float) -> tuple[float, bool]:
    return 100.0, True


class _Platform:
    """The engine's actions applied to the real store, as the alerting service does."""

    def __init__(self, engine: Engine, conn: psycopg.Connection[Any]) -> None:
        self.engine = engine
        self.conn = conn
        self.seq = 0
        self.created: list[AlertRow] = []
        self.suppressed = 0

    def apply(self, actions: list[Action], now_ms: int) -> None:
        for action in actions:
            if isinstance(action, Raise):
                result = store.raise_alert(self.conn, action, _route, _locate, now_ms)
                if result is None:
                    self.suppressed += 1
                elif result[1]:
                    self.created.append(result[0])
            elif isinstance(action, Close):
                store.close_active(
                    self.conn,
                    action.elder_id,
                    action.kind,
                    action.status,
                    action.actor,
                    action.note,
                    now_ms,
                    action.device_id,
                )

    def fix(self, ts: int, where: tuple[float, float]) -> None:
        self.seq += 1
        msg = _fix(self.seq, ts, where)
        self.apply(self.engine.on_message(msg, ts), ts)

    def smoke(self, ts: int, db_m: float) -> None:
        self.seq += 1
        msg = _reading(self.seq, ts, db_m)
        self.apply(self.engine.on_message(msg, ts), ts)

    def heartbeats(self, ts: int, *device_ids: str) -> None:
        for device_id in device_ids:
            self.seq += 1
            dtype = self.engine.registry(device_id)
            assert dtype is not None
            msg = Status(device_id=device_id, type=dtype, online=True, ts=ts, heartbeat_s=300)
            self.apply(self.engine.on_message(msg, ts), ts)

    def tick(self, now_ms: int) -> None:
        self.apply(self.engine.tick(now_ms), now_ms)

    def staff_resolve(self, alert: AlertRow, now_ms: int) -> None:
        store.transition(self.conn, alert.alert_id, AlertStatus.RESOLVED, "disp-1", "", now_ms)

    def kinds(self) -> list[AlertKind]:
        return [a.kind for a in self.created]


# Pure engine: every trigger of one condition carries the same start; a clear starts anew.


def _fix(seq: int, ts: int, where: tuple[float, float]) -> BandTelemetry:
    return BandTelemetry(
        device_id="band-ep",
        type=DeviceType.BAND,
        seq=seq,
        ts=ts,
        lat=where[0],
        lon=where[1],
        hacc_m=10.0,
    )


def _reading(seq: int, ts: int, db_m: float) -> SmokeTelemetry:
    return SmokeTelemetry(
        device_id="smoke-ep", type=DeviceType.SMOKE, seq=seq, ts=ts, smoke_db_m=db_m, temp_c=22.0
    )


def _episodes(actions: list[Action]) -> list[int | None]:
    return [a.trigger.episode_ts for a in actions if isinstance(a, Raise)]


def test_a_stay_outside_is_one_episode_and_a_return_home_ends_it(engine: Engine) -> None:
    seen: list[int | None] = []
    for i in range(5):
        msg = _fix(i, T0 + i * FIX_MS, OUTSIDE)
        seen.extend(_episodes(engine.on_message(msg, T0 + i * FIX_MS)))
    assert seen and set(seen) == {T0}
    home = _fix(5, T0 + 5 * FIX_MS, INSIDE)
    assert engine.on_message(home, T0 + 5 * FIX_MS) == []
    later: list[int | None] = []
    for i in range(6, 9):
        msg = _fix(i, T0 + i * FIX_MS, OUTSIDE)
        later.extend(_episodes(engine.on_message(msg, T0 + i * FIX_MS)))
    assert later and set(later) == {T0 + 6 * FIX_MS}


def test_smoke_is_one_episode_until_the_room_clears(engine: Engine) -> None:
    def reading(i: int, db_m: float) -> list[int | None]:
        ts = T0 + i * READING_MS
        msg = _reading(i, ts, db_m)
        return _episodes(engine.on_message(msg, ts))

    first = [e for i in range(10) for e in reading(i, 0.25)]
    assert len(first) == 10 and set(first) == {T0}
    assert reading(10, 0.01) == []
    second = [e for i in range(11, 15) for e in reading(i, 0.25)]
    assert second and set(second) == {T0 + 11 * READING_MS}


def test_discrete_events_carry_no_episode(engine: Engine) -> None:
    press = Event(device_id="btn-ep", type=DeviceType.BUTTON, seq=1, ts=T0, event="press")
    (action,) = engine.on_message(press, T0)
    assert isinstance(action, Raise) and action.trigger.episode_ts is None


# Through the real store: staff closing an alert ends the paging for that episode.


def test_wandering_elder_still_outside_after_staff_resolved_is_not_paged_again(
    engine: Engine, conn: psycopg.Connection[Any]
) -> None:
    p = _Platform(engine, conn)
    for i in range(4):
        p.fix(T0 + i * FIX_MS, OUTSIDE)
    assert p.kinds() == [AlertKind.WANDERING]
    p.staff_resolve(p.created[0], T0 + 4 * FIX_MS - 1000)
    for i in range(4, 10):
        p.fix(T0 + i * FIX_MS, OUTSIDE)
    assert p.kinds() == [AlertKind.WANDERING], "still the same stay outside"
    assert p.suppressed >= 6
    # Home, then away again: a new episode, a new alert.
    p.fix(T0 + 10 * FIX_MS, INSIDE)
    for i in range(11, 14):
        p.fix(T0 + i * FIX_MS, OUTSIDE)
    assert p.kinds() == [AlertKind.WANDERING, AlertKind.WANDERING]


def test_an_active_wandering_alert_keeps_following_the_elder(
    engine: Engine, conn: psycopg.Connection[Any]
) -> None:
    p = _Platform(engine, conn)
    for i in range(6):
        p.fix(T0 + i * FIX_MS, (OUTSIDE[0] + i * 0.001, OUTSIDE[1]))
    (alert,) = p.created
    now = store.get_alert(conn, alert.alert_id)
    assert now is not None and now.active and now.trigger_count >= 4
    assert now.lat == pytest.approx(OUTSIDE[0] + 5 * 0.001)


def test_smoke_still_above_threshold_after_staff_resolved_is_not_paged_again(
    engine: Engine, conn: psycopg.Connection[Any]
) -> None:
    p = _Platform(engine, conn)
    for i in range(3):
        p.smoke(T0 + i * READING_MS, 0.005)
    for i in range(3, 40):  # fire-level smoke, past the verification period
        p.smoke(T0 + i * READING_MS, 0.25)
    assert p.kinds() == [AlertKind.SMOKE]
    p.staff_resolve(p.created[0], T0 + 40 * READING_MS - 1000)
    for i in range(40, 60):
        p.smoke(T0 + i * READING_MS, 0.25)
    assert p.kinds() == [AlertKind.SMOKE], "the same smoke, already dealt with"
    assert p.suppressed >= 20
    # The room clears, then fills again: a new alert.
    for i in range(60, 63):
        p.smoke(T0 + i * READING_MS, 0.005)
    for i in range(63, 66):
        p.smoke(T0 + i * READING_MS, 0.25)
    assert p.kinds() == [AlertKind.SMOKE, AlertKind.SMOKE]


def test_offline_device_resolved_by_staff_while_still_silent_is_not_paged_again(
    engine: Engine, conn: psycopg.Connection[Any]
) -> None:
    p = _Platform(engine, conn)
    others = ("btn-ep", "cane-ep", "smoke-ep")
    p.heartbeats(T0, "band-ep", *others)
    minute = 60_000
    for m in range(1, 14):  # 2.5 x 300 s of silence from the band: offline
        p.heartbeats(T0 + m * minute, *others)
        p.tick(T0 + m * minute + 1000)
    assert p.kinds() == [AlertKind.DEVICE_OFFLINE]
    p.staff_resolve(p.created[0], T0 + 14 * minute)
    for m in range(15, 40):
        p.heartbeats(T0 + m * minute, *others)
        p.tick(T0 + m * minute + 1000)
    # A restarted service counts the silence from the band's last message, as it does.
    p.engine = Engine(small_fleet("ep"), _Never(), T0 + 40 * minute)
    p.engine.health.watch("band-ep", DeviceType.BAND, 300, T0)
    p.tick(T0 + 41 * minute)
    assert p.kinds() == [AlertKind.DEVICE_OFFLINE], "still the same silence"
    # Back, then silent again: a new alert.
    p.heartbeats(T0 + 42 * minute, "band-ep", *others)
    for m in range(43, 60):
        p.heartbeats(T0 + m * minute, *others)
        p.tick(T0 + m * minute + 1000)
    assert p.kinds() == [AlertKind.DEVICE_OFFLINE, AlertKind.DEVICE_OFFLINE]
