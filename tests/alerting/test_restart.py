"""Alerting restarts without blindness: learned state and missed alerts rebuilt from storage."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress

import psycopg
import pytest

from alerting import store
from alerting.lifecycle import AlertRow
from alerting.service import AlertingService
from alerting.settings import AlertingSettings
from gateway import AlertKind, DeviceType, Event, Message
from ingest.batch import Batch
from ingest.db import BatchWriter
from ingest.migrate import storage_mode
from ingest.settings import WriteMethod
from tests.alerting.helpers import (
    AlertListener,
    home_fix,
    prepare_db,
    running,
    settings_for,
    small_fleet,
)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def _last_beijing_noon_ms(now_ms: int) -> int:
    """The latest 12:00 in Beijing (04:00 UTC) at or before `now_ms`."""
    noon = now_ms - now_ms % DAY_MS + 4 * HOUR_MS
    return noon if noon <= now_ms else noon - DAY_MS


def _store(schema_url: str, rows: list[tuple[Message, int]]) -> None:
    """Store messages as ingest does (its batch writer), each with its receive time."""
    with psycopg.connect(schema_url) as conn:
        batch = Batch()
        for message, received_ms in rows:
            batch.add(message, received_ms)
        BatchWriter(WriteMethod.UNNEST, storage_mode(conn)).write(conn, batch)


def _service(
    settings: AlertingSettings, clock: Callable[[], int]
) -> AbstractContextManager[AlertingService]:
    # Start-up replays an hour of stored history: allow it more than the helper's default.
    return running(settings, clock, ready_timeout_s=60.0)


def _alerts(schema_url: str) -> list[AlertRow]:
    with psycopg.connect(schema_url) as conn:
        return store.list_alerts(conn)


def test_elder_inactive_for_hours_is_alerted_at_the_first_tick_after_a_restart(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    # Daytime in Beijing, so the no-baseline rule (no movement for 4 h, 08:00-20:00) applies.
    sim_now = _last_beijing_noon_ms(int(time.time() * 1000))
    band = f"band-{device_suffix}"
    rows: list[tuple[Message, int]] = []
    for seq, ts in enumerate(range(sim_now - int(4.5 * HOUR_MS), sim_now - 60_000, 300_000)):
        rows.append((home_fix(band, seq, ts, steps=0, hr_bpm=68), ts + 300))
    _store(schema_url, rows)
    started = time.monotonic()

    def clock() -> int:
        return sim_now + int((time.monotonic() - started) * 1000)

    settings = settings_for(mqtt_url, schema_url, topic_prefix)
    with _service(settings, clock) as service:
        deadline = time.monotonic() + 10
        while not service.raised() and time.monotonic() < deadline:
            time.sleep(0.05)
        raised = service.raised()
    assert [a.kind for a in raised] == [AlertKind.INACTIVITY]
    # "At the next tick": within a few ticks of the simulated start, not hours later.
    assert raised[0].raised_ts - sim_now < 30_000


def test_sos_stored_40_minutes_before_a_restart_is_alerted_once(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    now = int(time.time() * 1000)
    press_ts = now - 40 * 60_000
    press = Event(
        device_id=f"btn-{device_suffix}", type=DeviceType.BUTTON, seq=7, ts=press_ts, event="press"
    )
    _store(schema_url, [(press, press_ts + 150)])
    listener = AlertListener(mqtt_url, topic_prefix)
    settings = settings_for(mqtt_url, schema_url, topic_prefix)
    try:
        with _service(settings, lambda: int(time.time() * 1000)):
            _, alert, _ = listener.wait_for(lambda t, m: m.kind is AlertKind.SOS, 10)
        assert alert.event_ts == press_ts
        # Restarted again: the same stored press is caught up again but never re-raised.
        with _service(settings, lambda: int(time.time() * 1000)):
            time.sleep(1.0)
        assert listener.alerts.empty()
    finally:
        listener.close()
    assert [(a.kind, a.event_ts) for a in _alerts(schema_url)] == [(AlertKind.SOS, press_ts)]


class _LateProxy:
    """A TCP port that forwards to PostgreSQL, but only once `open()` is called."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._server: socket.socket | None = None
        self._closed = threading.Event()

    def open(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port))
        server.settimeout(0.2)
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        if self._server is not None:
            self._server.close()


@pytest.mark.parametrize("standby", [True, False], ids=["standby", "alone"])
def test_database_down_at_start_is_retried_with_warnings(
    mqtt_url: str,
    schema_url: str,
    database_url: str,
    topic_prefix: str,
    device_suffix: str,
    standby: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    proxy = _LateProxy((str(info.get("host", "127.0.0.1")), int(str(info.get("port", 5432)))))
    down_url = schema_url.replace(
        f"{info.get('host')}:{info.get('port')}", f"127.0.0.1:{proxy.port}"
    )
    assert down_url != schema_url
    settings = settings_for(mqtt_url, down_url, topic_prefix, standby=standby)
    service = AlertingService(settings)
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            service.run(stop)
        except BaseException as exc:
            errors.append(exc)

    caplog.set_level(logging.WARNING)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        time.sleep(3.0)
        assert not errors and thread.is_alive()
        assert not service.ready.is_set()
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) >= 2, "each failed attempt logs a WARNING"
        proxy.open()
        assert service.ready.wait(40), "service did not start once the database appeared"
    finally:
        stop.set()
        thread.join(15)
        proxy.close()
    assert not errors, f"service failed: {errors[0]!r}"
