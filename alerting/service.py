"""The alerting service: live device stream -> detectors -> stored, routed, published alerts."""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from alerting.dispatch import Dispatcher
from alerting.engine import Engine
from alerting.fall_model import load_fall_model
from alerting.lifecycle import AlertRow
from alerting.model import Action
from alerting.mqtt import AlertingMqtt, Inbound
from alerting.settings import AlertingSettings
from alerting.writer import AlertWriter
from gateway.codec import decode
from gateway.errors import PayloadError
from gateway.fleet import Fleet
from ingest import readback
from ingest.migrate import apply_migrations
from ingest.registry import load_centers_on_duty, load_fleet

logger = logging.getLogger(__name__)

Clock = Callable[[], int]
# Cane windows are bulky: catch the fall detector up on the last minute only.
_CANE_CATCHUP_MS = 60_000
_FLEET_RELOAD_S = 10.0


def wall_clock_ms() -> int:
    """The platform clock, ms since the epoch."""
    return int(time.time() * 1000)


@dataclass(slots=True)
class ServiceStats:
    """Counters of one service run."""

    received: int = 0
    invalid: int = 0
    errors: int = 0
    caught_up: int = 0


class AlertingService:
    """`AlertingService(settings).run(stop_event)`: runs until `stop_event` is set.

    Args:
        settings: the service settings.
        clock: the clock detectors and alerts run on (wall clock by default; a simulation
            passes one that follows its own device time).
    """

    def __init__(self, settings: AlertingSettings, clock: Clock = wall_clock_ms) -> None:
        self.settings = settings
        self.clock = clock
        self.stats = ServiceStats()
        self.ready = threading.Event()
        self.inbox: queue.Queue[Inbound] = queue.Queue()
        self.engine: Engine | None = None
        self.writer: AlertWriter | None = None

    def run(self, stop: threading.Event) -> None:
        """Connect, reload state, catch up, then handle messages and ticks until `stop`."""
        s = self.settings
        with psycopg.connect(s.database_url, autocommit=True) as mig:
            apply_migrations(mig)
        conn = psycopg.connect(s.database_url)
        mqtt = AlertingMqtt(
            s.mqtt_url,
            s.client_id,
            group=s.share_group,
            prefix=s.topic_prefix,
            session_expiry_s=s.session_expiry_s,
            inbox=self.inbox,
        )
        try:
            self._start(conn, mqtt)
            self._loop(stop, mqtt)
        finally:
            mqtt.stop()
            if self.writer is not None:
                conn = self.writer.conn
            conn.close()

    def _start(self, conn: psycopg.Connection[Any], mqtt: AlertingMqtt) -> None:
        s = self.settings
        now = self.clock()
        fleet = load_fleet(conn)
        conn.commit()
        model = load_fall_model(s.fall_model_path)
        engine = Engine(
            fleet,
            model.classifier,
            now,
            sos_grace_s=s.sos_grace_s,
            will_grace_s=s.will_grace_s,
            fall_threshold=model.threshold,
        )
        dispatcher = Dispatcher(fleet.care_centers, s.deadlines_s(), s.reminder_s)
        writer = AlertWriter(conn, dispatcher, mqtt.publish, s.topic_prefix)
        self.engine, self.writer = engine, writer
        self._reload_centers(conn, writer)
        writer.refresh_active()
        engine.restore((a.kind, a.elder_id, a.device_id) for a in writer.active.values())
        self._baselines(conn, engine, now)
        for device_id, seen_ms in readback.last_seen(conn).items():
            device = engine.device(device_id)
            if device is not None:
                engine.health.watch(device_id, device.type, device.heartbeat_s, seen_ms)
        mqtt.start()
        self._catch_up(conn, engine, writer, now)
        self.ready.set()
        logger.info(
            "alerting ready: %d devices, %d active alerts", len(fleet.devices), len(writer.active)
        )

    def _baselines(self, conn: psycopg.Connection[Any], engine: Engine, now: int) -> None:
        since = now - self.settings.baseline_days * 86_400_000
        for elder_id, hours in readback.hourly_baselines(conn, since).items():
            engine.inactivity.set_baseline(elder_id, hours)

    def _catch_up(
        self, conn: psycopg.Connection[Any], engine: Engine, writer: AlertWriter, now: int
    ) -> None:
        types = engine.device_types()
        since = now - int(self.settings.catchup_s * 1000)
        stored = readback.recent_messages(conn, types, since, now - _CANE_CATCHUP_MS)
        for recv_ms, message in stored:
            for action in engine.on_message(message, recv_ms):
                writer.apply(action, self.clock())
        self.stats.caught_up = len(stored)
        if stored:
            logger.info("caught up on %d stored messages", len(stored))

    def _reload_centers(self, conn: psycopg.Connection[Any], writer: AlertWriter) -> None:
        rows = load_centers_on_duty(conn)
        conn.commit()  # end the read, so the next reload sees duty changes
        centers = [c for c, _ in rows]
        if centers != list(writer.centers.values()):
            writer.dispatcher.set_centers(centers)
            writer.centers = {c.id: c for c in centers}
        for center, on_duty in rows:
            if writer.dispatcher.on_duty(center.id) != on_duty:
                writer.dispatcher.set_on_duty(center.id, on_duty)

    def _loop(self, stop: threading.Event, mqtt: AlertingMqtt) -> None:
        assert self.engine is not None and self.writer is not None
        s = self.settings
        next_tick = next_centers = next_fleet = 0.0
        while not stop.is_set():
            try:
                item = self.inbox.get(timeout=s.tick_s)
            except queue.Empty:
                item = None
            if item is not None:
                self._handle(item, stop)
                mqtt.ack(item.mid, item.qos)
            mono = time.monotonic()
            try:
                if mono >= next_tick:
                    next_tick = mono + s.tick_s
                    self._tick(stop)
                if mono >= next_centers:
                    next_centers = mono + s.centers_reload_s
                    self._reload_centers(self.writer.conn, self.writer)
                if mono >= next_fleet:
                    next_fleet = mono + _FLEET_RELOAD_S
                    self._reload_fleet(self.writer.conn)
            except psycopg.OperationalError:
                self._reconnect(stop)

    def _reconnect(self, stop: threading.Event) -> None:
        """Database down (STYLE.md "Errors" 3): reconnect with jittered backoff."""
        assert self.writer is not None
        delay_s = 0.5
        while not stop.is_set():
            logger.warning("database unavailable; reconnecting in %.1f s", delay_s)
            stop.wait(delay_s * random.uniform(0.8, 1.2))
            try:
                conn = psycopg.connect(self.settings.database_url)
            except psycopg.OperationalError:
                delay_s = min(delay_s * 2, 30.0)
                continue
            with contextlib.suppress(psycopg.Error):
                self.writer.conn.close()
            self.writer.conn = conn
            return

    def _apply(self, action: Action, now: int, stop: threading.Event) -> None:
        """Store one action, retrying across database outages so no alert is lost."""
        assert self.writer is not None
        while not stop.is_set():
            try:
                self.writer.apply(action, now)
                return
            except psycopg.OperationalError:
                self._reconnect(stop)

    def _reload_fleet(self, conn: psycopg.Connection[Any]) -> None:
        assert self.engine is not None
        fleet: Fleet = load_fleet(conn)
        conn.commit()
        self.engine.set_fleet(fleet, self.clock())

    def _handle(self, item: Inbound, stop: threading.Event) -> None:
        assert self.engine is not None and self.writer is not None
        self.stats.received += 1
        try:
            message = decode(
                item.topic,
                item.payload,
                now_ms=wall_clock_ms(),
                registry=self.engine.registry,
                prefix=self.settings.topic_prefix,
            )
        except PayloadError as exc:
            # Invalid input is dead-lettered by ingest; here it is only counted.
            self.stats.invalid += 1
            logger.debug("skipped invalid message on %s: %s", item.topic, exc.reason.value)
            return
        try:
            now = self.clock()
            for action in self.engine.on_message(message, now):
                self._apply(action, now, stop)
        except Exception:
            self.stats.errors += 1
            logger.exception("failed to handle a message on %s", item.topic)

    def _tick(self, stop: threading.Event) -> None:
        assert self.engine is not None and self.writer is not None
        now = self.clock()
        for action in self.engine.tick(now):
            self._apply(action, now, stop)
        self.writer.refresh_active()
        self.writer.dispatch(now)

    def raised(self) -> list[AlertRow]:
        """Alerts this run raised (newest last)."""
        return list(self.writer.raised) if self.writer else []


def run_forever(settings: AlertingSettings) -> None:
    """Run until interrupted (the `eldercare alerting` command)."""
    stop = threading.Event()
    service = AlertingService(settings)
    try:
        service.run(stop)
    except KeyboardInterrupt:
        stop.set()
