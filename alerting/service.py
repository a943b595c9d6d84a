"""The alerting service: live device stream -> detectors -> stored, routed, published alerts."""

from __future__ import annotations

import contextlib
import inspect
import logging
import queue
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from alerting import store
from alerting.dispatch import Dispatcher
from alerting.engine import Engine, finding_actions
from alerting.fall_model import FallModel, load_fall_model
from alerting.fleet_reload import FleetReloader
from alerting.late_falls import LEAD_S, MAX_BACK_S, OVERLAP_S, LateFalls
from alerting.leader import Leadership, fence_on_takeover
from alerting.lifecycle import AlertRow
from alerting.metrics import AlertingMetrics, LiveState
from alerting.model import Action, Finding
from alerting.mqtt import AlertingMqtt, Inbound, Inbox
from alerting.outbox import Outbox, default_outbox_path, store_dead_letter
from alerting.partition import Partition, TopicOwner
from alerting.settings import AlertingSettings
from alerting.warmup import learn_heart_rates, load_band_history, warm_movement
from alerting.writer import AlertWriter
from gateway.codec import decode
from gateway.contract import AlertStatus, DeviceType
from gateway.errors import PayloadError
from gateway.fleet import Fleet
from gateway.messages import BandTelemetry
from ingest import pg, readback
from ingest.migrate import apply_migrations
from ingest.registry import load_centers_on_duty, load_fleet, registry_version

logger = logging.getLogger(__name__)

Clock = Callable[[], int]
T = TypeVar("T")
# Cane windows are bulky: catch the live fall detector up on the last minute only; older ones
# are judged around their impacts, in the background (alerting.late_falls).
_CANE_CATCHUP_MS = 60_000
# How often the progress mark (store.save_progress) is written while acting.
_PROGRESS_EVERY_S = 10.0
# Engine counters of what it acted on; every other counter is an input it suppressed.
_ACTED_ON = frozenset({"messages", "triggers", "clears"})
_START_BACKOFF_MAX_S = 30.0
# Ingest commits a batch within its batch wait (100 ms by default): five times that.
_INGEST_LAG_S = 0.5
_RECENT_AGAIN_MS = 10_000
# Messages handled per drain cycle: the anomaly model scores their heart rates together, and
# they are acknowledged once all are handled. Bounded so ticks and reloads keep their pace.
_DRAIN_MAX = 500


def _committed(read: Callable[[psycopg.Connection[Any]], T], conn: psycopg.Connection[Any]) -> T:
    """`read(conn)`, then end its transaction."""
    out = read(conn)
    conn.commit()
    return out


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
    retained: int = 0  # retained replays received (handed to the engine flagged as such)
    other_partition: int = 0  # received but another partition's (acknowledged unread)
    dead_lettered: int = 0


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
        self.inbox = Inbox(settings.inbox_size)
        self.partition = Partition(settings.partition, settings.partitions)
        # Each partition has its own broker session and outbox (alerting.partition).
        self.client_id = settings.client_id + self.partition.suffix
        self.owner = TopicOwner(self.partition)
        self.outbox = Outbox(_outbox_path(settings.outbox_path, self.client_id, self.partition))
        self.metrics = AlertingMetrics()
        self.metrics.bind(self._live)
        self.mqtt: AlertingMqtt | None = None
        self._fresh: queue.Queue[psycopg.Connection[Any]] = queue.Queue()
        self._reconnecting: threading.Thread | None = None
        self._last_tick_ms = 0
        self._last_tick_mono = time.monotonic()
        self._engine_knows_retained: bool | None = None
        self.engine: Engine | None = None
        self.writer: AlertWriter | None = None
        self.leader: Leadership | None = None
        self._halt = threading.Event()  # set when this process must stop acting
        self._acting = False  # False while standing by: health is then the standby loop's
        self._model: FallModel | None = None
        self._registry_version: int | None = None
        self._fleet_reload: FleetReloader | None = None
        # The stored impacts of the outage before this run, judged in the background.
        self.late_falls: LateFalls | None = None
        self._handled_through_ms = 0  # platform ms up to which live traffic was handled
        self._next_progress = 0.0

    def run(self, stop: threading.Event) -> None:
        """Stand by until this process holds the alerting lock, then act until `stop`.

        With `standby` off the process acts at once. A process that loses the lock to another
        halts its loop, leaves the broker and stands by again (alerting.leader).
        """
        s = self.settings
        # Health and metrics for the whole process, standby included (a container's probe).
        if s.metrics_port is not None:
            self.metrics.serve(s.metrics_port, self._live, host=s.metrics_host)
        try:
            self._run(stop)
        finally:
            self.metrics.close()

    def _run(self, stop: threading.Event) -> None:
        s = self.settings
        if not s.standby:
            self._run_active(stop)
            return
        self._fall_model()  # a second of work a standby does now, not after a failover
        while not stop.is_set():
            self.leader = Leadership(
                s.database_url,
                s.topic_prefix,
                s.standby_poll_s,
                s.standby_lock_key,
                partition=self.partition,
            )
            if not self.leader.acquire(stop):
                self.leader.release()
                return
            halt = threading.Event()
            self.leader.keep(stop, halt)
            try:
                self._run_active(halt)
            finally:
                self.leader.release()
                self.ready.clear()
            if not stop.is_set():
                logger.warning("no longer the active alerting process: standing by")

    def _run_active(self, halt: threading.Event) -> None:
        """Start (retrying while the database or broker is away), then loop until `halt`."""
        started = self._start_retrying(halt)
        if started is None:
            return
        conn, mqtt = started
        self._last_tick_mono, self._acting = time.monotonic(), True
        s = self.settings
        reloader = FleetReloader(
            lambda: pg.connect(s.database_url), self._registry_version, s.fleet_reload_s
        )
        self._fleet_reload = reloader
        reloader.start()
        try:
            self._loop(halt, mqtt)
        finally:
            reloader.stop()
            self._acting = False
            mqtt.stop()
            if self.writer is not None:
                conn = self.writer.conn
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _start_retrying(
        self, halt: threading.Event
    ) -> tuple[psycopg.Connection[Any], AlertingMqtt] | None:
        """Run `_start` until it succeeds, with jittered backoff and a WARNING per failure."""
        s = self.settings
        self._halt = halt
        delay_s = 0.5
        while not halt.is_set():
            conn: psycopg.Connection[Any] | None = None
            self.inbox = Inbox(s.inbox_size)
            mqtt = AlertingMqtt(
                s.mqtt_url,
                self.client_id,
                # Active/standby and partitions consume the whole stream: a plain persistent
                # subscription. A partition subscribes its own devices' telemetry and drops
                # the other partitions' events and statuses itself.
                group="" if s.standby or not self.partition.whole else s.share_group,
                prefix=s.topic_prefix,
                session_expiry_s=s.session_expiry_s,
                inbox=self.inbox,
                accept=None if self.partition.whole else self.owner,
                per_device=not self.partition.whole,
                urgent_keepalive_s=s.urgent_keepalive_s,
            )
            if self.leader is not None:
                for client in mqtt.clients:  # both sessions are the active's, fenced alike
                    fence_on_takeover(client, halt, self.leader)
            try:
                if s.migrate_on_start:
                    with pg.connect(s.database_url, autocommit=True) as mig:
                        apply_migrations(mig)
                conn = pg.connect(s.database_url)
                self._start(conn, mqtt)
                return conn, mqtt
            except (psycopg.OperationalError, OSError, TimeoutError) as exc:
                mqtt.stop()
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                logger.warning("alerting start-up failed (%s); retrying in %.1f s", exc, delay_s)
                halt.wait(delay_s * random.uniform(0.8, 1.2))
                delay_s = min(delay_s * 2, _START_BACKOFF_MAX_S)
        return None

    def _start(self, conn: psycopg.Connection[Any], mqtt: AlertingMqtt) -> None:
        s = self.settings
        now = self.clock()
        version = registry_version(conn)  # before the rows: a change in between reloads again
        whole = load_fleet(conn)
        conn.commit()
        self._registry_version = version
        self.owner.set_devices(whole.devices)
        fleet = self.partition.fleet(whole)
        if not self.partition.whole:  # a partition subscribes its devices' telemetry
            mine = set(_telemetry_senders(fleet))
            others = (d for d in _telemetry_senders(whole) if d not in mine)
            mqtt.set_telemetry_devices(mine, others)
        model = self._fall_model()
        engine = Engine(
            fleet,
            model.classifier,
            now,
            sos_grace_s=s.sos_grace_s,
            will_grace_s=s.will_grace_s,
            fall_threshold=model.threshold,
        )
        dispatcher = Dispatcher(fleet.care_centers, s.deadlines_s(), s.reminder_s)
        writer = AlertWriter(
            conn, dispatcher, mqtt.publish, s.topic_prefix, owns=self.partition.owns_elder
        )
        self.engine, self.writer = engine, writer
        self._attach_outbox(conn, writer)
        self._reload_centers(conn, writer)
        writer.refresh_active()
        catchup_since = now - self._catchup_window_ms()
        history = load_band_history(
            conn,
            engine,
            now,
            catchup_since,
            anomaly_h=s.warmup_anomaly_h,
            anomaly_samples=s.warmup_anomaly_samples,
        )
        moves = warm_movement(engine, history.movement, history.movement_since_ms)
        engine.restore((a.kind, a.elder_id, a.device_id) for a in writer.active.values())
        self._baselines(conn, engine, now)
        for device_id, seen_ms in readback.last_seen(conn).items():
            device = engine.device(device_id)
            if device is not None:
                engine.health.watch(device_id, device.type, device.heartbeat_s, seen_ms)
        mqtt.start(stop=self._halt)
        subscribed = time.monotonic()
        read_ms = self.clock()
        caught_up = self._catch_up(conn, engine, writer, catchup_since, now)
        # Readings ingest received just before the subscription may be committed just after
        # the first read: read again once its batch wait has surely passed (the engine drops
        # what it has seen by message identity).
        time.sleep(max(0.0, _INGEST_LAG_S - (time.monotonic() - subscribed)))
        caught_up += self._catch_up(conn, engine, writer, read_ms - _RECENT_AGAIN_MS, now)
        self.stats.caught_up = caught_up
        self._plan_late_falls(conn, engine, model, catchup_since, now)
        learned = learn_heart_rates(engine, history.heart_rates)
        logger.info(
            "warmed up on %d stored movements and %d heart rates; caught up on %d stored messages",
            moves,
            learned,
            caught_up,
        )
        self.ready.set()
        logger.info(
            "alerting ready%s: %d devices, %d active alerts",
            ""
            if self.partition.whole
            else f" (partition {self.partition.index} of {self.partition.count})",
            len(fleet.devices),
            len(writer.active),
        )

    def _progress_key(self) -> str:
        p = self.partition
        return "whole" if p.whole else f"{p.index}/{p.count}"

    def _plan_late_falls(
        self,
        conn: psycopg.Connection[Any],
        engine: Engine,
        model: FallModel,
        catchup_since: int,
        now: int,
    ) -> None:
        """Plan judging the stored impacts the live detector will not see: from the previous
        run's progress mark (the catch-up window when there is none; at most `MAX_BACK_S`
        back) to the caught-up minute (alerting.late_falls). Reads nothing more here: the
        loop does the work, a piece per cycle."""
        through = store.load_progress(conn, self._progress_key())
        since = catchup_since if through is None else through - int(OVERLAP_S * 1000)
        oldest = now - int(MAX_BACK_S * 1000)
        if since < oldest:
            logger.error(
                "alerting was down for %.1f h: cane windows received more than %.0f h ago are"
                " not judged for falls",
                (now - since) / 3_600_000,
                MAX_BACK_S / 3600,
            )
            since = oldest
        until = now - _CANE_CATCHUP_MS + int(LEAD_S * 1000)
        self._handled_through_ms = now
        if since >= until:
            self.late_falls = None  # nothing missed: the caught-up minute covers it
            return
        self.late_falls = LateFalls(
            since,
            until,
            lambda d: engine.device(d) is not None,
            model.classifier,
            model.threshold,
            lambda findings: finding_actions(engine, findings),
        )
        logger.warning(
            "judging stored cane impacts received %.0f-%.0f s ago, in the background",
            (now - since) / 1000,
            (now - until) / 1000,
        )

    def _judge_late_falls(self, stop: threading.Event) -> None:
        """One piece of the outage's stored impacts (between drain cycles)."""
        late, writer = self.late_falls, self.writer
        assert late is not None and writer is not None
        now = self.clock()
        for action in late.step(writer.conn, now, writer.db):
            self._apply(action, now, stop)
        if late.done:
            self._next_progress = 0.0  # record it now: a restart need not judge them again
            logger.info(
                "stored cane impacts judged: %d canes, %d windows, %d falls found late,"
                " %d already alerted",
                late.stats.canes,
                late.stats.windows,
                late.stats.raised,
                late.stats.already_alerted,
            )

    def _save_progress(self) -> None:
        """Record how far traffic was handled: live, and while an outage's impacts are being
        judged, no further than they are (a restart in the middle judges the rest)."""
        assert self.writer is not None
        mono = time.monotonic()
        if mono < self._next_progress:
            return
        self._next_progress = mono + _PROGRESS_EVERY_S
        through = self._handled_through_ms
        if self.late_falls is not None and not self.late_falls.done:
            through = min(through, self.late_falls.judged_through_ms)
        self.writer.db(store.save_progress, self.writer.conn, self._progress_key(), through)

    def _baselines(self, conn: psycopg.Connection[Any], engine: Engine, now: int) -> None:
        since = now - self.settings.baseline_days * 86_400_000
        for elder_id, hours in readback.hourly_baselines(conn, since).items():
            if self.partition.owns_elder(elder_id):
                engine.inactivity.set_baseline(elder_id, hours)

    def _fall_model(self) -> FallModel:
        """The fall model, loaded once per process (a standby loads it before it leads)."""
        if self._model is None:
            self._model = load_fall_model(self.settings.fall_model_path)
        return self._model

    def _catchup_window_ms(self) -> int:
        """Catch-up spans the broker session's expiry: what a resumed session could hold."""
        s = self.settings
        return int(max(s.catchup_s, s.session_expiry_s) * 1000)

    def _catch_up(
        self,
        conn: psycopg.Connection[Any],
        engine: Engine,
        writer: AlertWriter,
        since_ms: int,
        now: int,
    ) -> int:
        """Replay the messages ingest stored since `since_ms`; returns how many."""
        types = engine.device_types()
        cane_since = max(since_ms, now - _CANE_CATCHUP_MS)
        stored = readback.recent_messages(conn, types, since_ms, cane_since)
        if not self.partition.whole:  # only this partition's devices
            stored = [(r, m) for r, m in stored if engine.device(m.device_id) is not None]
        for recv_ms, message in stored:
            for action in engine.on_message(message, recv_ms):
                writer.apply(action, self.clock())
        return len(stored)

    def _reload_centers(self, conn: psycopg.Connection[Any], writer: AlertWriter) -> None:
        # Committed: end the read, so the next reload sees duty changes.
        rows = writer.db(_committed, load_centers_on_duty, conn)
        centers = [c for c, _ in rows]
        if centers != list(writer.centers.values()):
            writer.dispatcher.set_centers(centers)
            writer.centers = {c.id: c for c in centers}
        for center, on_duty in rows:
            if writer.dispatcher.on_duty(center.id) != on_duty:
                writer.dispatcher.set_on_duty(center.id, on_duty)

    def _loop(self, stop: threading.Event, mqtt: AlertingMqtt) -> None:
        assert self.engine is not None and self.writer is not None
        self.mqtt = mqtt
        self._announce_merges(self.writer)
        self._run_loop(stop, mqtt)

    def _run_loop(self, stop: threading.Event, mqtt: AlertingMqtt) -> None:
        assert self.writer is not None and self.engine is not None
        s = self.settings
        self.engine.anomaly.defer = True
        next_tick = next_centers = 0.0
        while not stop.is_set():
            if mqtt.refused is not None:
                raise mqtt.refused
            judging = (
                self.late_falls is not None
                and not self.late_falls.done
                and self.writer is not None
                and self.writer.online
            )
            self._drain(stop, mqtt, 0.0 if judging else s.tick_s)
            self._poll_reconnect(stop)
            mono = time.monotonic()
            try:
                if mono >= next_tick:
                    next_tick = mono + s.tick_s
                    self._tick(stop)
                if not self.writer.online:
                    continue
                if judging:
                    self._judge_late_falls(stop)
                self._save_progress()
                if mono >= next_centers:
                    next_centers = mono + s.centers_reload_s
                    self._reload_centers(self.writer.conn, self.writer)
                fresh = self._fleet_reload.take() if self._fleet_reload is not None else None
                if fresh is not None:
                    self._adopt_fleet(fresh)
            except psycopg.OperationalError:
                self._offline(stop)

    def _attach_outbox(self, conn: psycopg.Connection[Any], writer: AlertWriter) -> None:
        """Give the writer the outbox and store what a previous run left in it."""
        writer.outbox = self.outbox
        writer.db_deadline_s = self.settings.db_deadline_s
        pending = self.outbox.pending()
        if pending:
            logger.warning("reconciling %d alerts kept in the outbox", len(pending))
            self.outbox.reconcile(conn)  # merges are announced once the broker is up

    def _announce_merges(self, writer: AlertWriter) -> None:
        """An outbox alert merged into another process's: the centre sees both outcomes."""
        for closed, into in self.outbox.merged:
            writer.announce(closed)
            writer.announce(into, closed.center_id)
        self.outbox.merged = []

    def _offline(self, stop: threading.Event) -> None:
        assert self.writer is not None
        if self.writer.online:
            logger.warning("database unavailable: alerts are kept in %s", self.outbox.path)
        self.writer.online = False
        self._reconnect(stop)

    def _reconnect(self, stop: threading.Event) -> None:
        """Database down (STYLE.md "Errors" 3): reconnect in the background with jittered
        backoff while the loop keeps paging from memory and the outbox."""
        if self._reconnecting is not None and self._reconnecting.is_alive():
            return

        def attempt() -> None:
            delay_s = 0.5
            while not stop.is_set():
                stop.wait(delay_s * random.uniform(0.8, 1.2))
                try:
                    self._fresh.put(pg.connect(self.settings.database_url))
                    return
                except psycopg.OperationalError:
                    delay_s = min(delay_s * 2, 30.0)
                    logger.warning("database unavailable; retrying in %.1f s", delay_s)

        self._reconnecting = threading.Thread(target=attempt, name="db-reconnect", daemon=True)
        self._reconnecting.start()

    def _poll_reconnect(self, stop: threading.Event) -> None:
        """Once reconnected: reconcile the outbox, then go back to PostgreSQL."""
        assert self.writer is not None
        try:
            conn = self._fresh.get_nowait()
        except queue.Empty:
            return
        try:
            self.outbox.reconcile(conn)
            self._announce_merges(self.writer)
            old, self.writer.conn = self.writer.conn, conn
            self.writer.online = True
            self.writer.refresh_active()
        except psycopg.OperationalError:
            self._offline(stop)
            return
        if not self.writer.hung():  # else its own thread still uses it; left to the GC
            with contextlib.suppress(psycopg.Error):
                old.close()
        logger.info("database back: outbox reconciled")

    def _apply(self, action: Action, now: int, stop: threading.Event) -> None:
        """Store one action; while the database is down the writer keeps it in the outbox."""
        assert self.writer is not None
        before = len(self.writer.raised), self.writer.published
        self.writer.apply(action, now)
        if len(self.writer.raised) > before[0]:
            self.metrics.alerts.labels(self.writer.raised[-1].kind.value).inc()
        self.metrics.published.inc(self.writer.published - before[1])
        if not self.writer.online:
            self._offline(stop)

    def _adopt_fleet(self, fleet: Fleet) -> None:
        """Adopt a registry the reloader loaded off the loop (alerting.fleet_reload)."""
        assert self.engine is not None
        self.owner.set_devices(fleet.devices)
        mine = self.partition.fleet(fleet)
        self.engine.set_fleet(mine, self.clock())
        if self.mqtt is not None and not self.partition.whole:
            self.mqtt.set_telemetry_devices(_telemetry_senders(mine))

    def _drain(self, stop: threading.Event, mqtt: AlertingMqtt, wait_s: float) -> None:
        """Handle what the inbox holds (up to _DRAIN_MAX), urgent lane first, then score the
        cycle's heart rates together and acknowledge.

        Acknowledged only once handled: its alert is in PostgreSQL or the outbox, or the
        message is dead-lettered.
        """
        assert self.engine is not None
        items: list[Inbound] = []
        item = self.inbox.get(timeout=wait_s)
        while item is not None:
            items.append(item)
            if item.foreign:
                self.stats.received += 1
                self.stats.other_partition += 1
                self.metrics.received.inc()
            else:
                self._handle(item, stop)
            if len(items) >= _DRAIN_MAX:
                break
            item = self.inbox.get(timeout=0)
        if self.engine.anomaly.pending():
            now = self.clock()
            try:
                findings: list[Finding] = list(self.engine.anomaly.flush())
                actions = finding_actions(self.engine, findings)
                for action in actions:
                    self._apply(action, now, stop)
            except Exception:
                self.stats.errors += 1
                logger.exception("failed to score %d heart rates", len(items))
        mqtt.ack_all(items)
        # Everything received before the oldest message still waiting has been handled.
        waiting = len(items) >= _DRAIN_MAX and self.inbox.qsize() > 0
        newest = max(item.recv_ms for item in items) if waiting else self.clock()
        self._handled_through_ms = max(self._handled_through_ms, newest)

    def _handle(self, item: Inbound, stop: threading.Event) -> None:
        assert self.engine is not None and self.writer is not None
        self.stats.received += 1
        self.metrics.received.inc()
        try:
            message = decode(
                item.topic,
                item.payload,
                now_ms=wall_clock_ms(),
                registry=self.engine.registry,
                prefix=self.settings.topic_prefix,
            )
        except PayloadError as exc:
            # Invalid input is dead-lettered by ingest; here it is counted and logged.
            self.stats.invalid += 1
            self.metrics.invalid.inc()
            logger.warning("dropped invalid message on %s: %s", item.topic, exc.reason.value)
            return
        if item.retain:
            self.stats.retained += 1
        try:
            now = self.clock()
            queued = self.engine.anomaly.pending()
            for action in self._on_message(message, now, item.retain):
                self._apply(action, now, stop)
            if isinstance(message, BandTelemetry) and self.engine.anomaly.pending() > queued:
                self.engine.anomaly.stamp(message.ts, message.seq)
        except Exception as exc:
            # A bug, not an outage (the writer keeps alerts through those): never acknowledge
            # it silently.
            self.stats.errors += 1
            logger.exception("failed to handle a message on %s", item.topic)
            self._dead_letter(item, f"{type(exc).__name__}: {exc}")

    def _on_message(self, message: Any, now: int, retained: bool) -> list[Action]:
        """The engine's verdict; a retained replay is flagged where the engine can tell."""
        assert self.engine is not None
        on_message: Callable[..., list[Action]] = self.engine.on_message
        if self._engine_knows_retained is None:
            self._engine_knows_retained = "retained" in inspect.signature(on_message).parameters
        if self._engine_knows_retained:
            return on_message(message, now, retained=retained)
        return on_message(message, now)

    def _dead_letter(self, item: Inbound, detail: str) -> None:
        """Dead-letter a message whose handling failed (`internal_error`), here or locally."""
        assert self.writer is not None
        self.stats.dead_lettered += 1
        self.metrics.dead_letters.labels("internal_error").inc()
        if self.writer.online:
            conn = self.writer.conn

            def store() -> None:
                conn.rollback()
                store_dead_letter(
                    conn, item.recv_ms, item.topic, item.payload, "internal_error", detail
                )
                conn.commit()

            try:
                self.writer.db(store)
                return
            except psycopg.Error:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
        self.outbox.dead_letter(item.recv_ms, item.topic, item.payload, "internal_error", detail)

    def _tick(self, stop: threading.Event) -> None:
        assert self.engine is not None and self.writer is not None
        now = self.clock()
        for action in self.engine.tick(now):
            self._apply(action, now, stop)
        if self.writer.online:
            try:
                self.writer.refresh_active()
            except psycopg.OperationalError:
                self._offline(stop)
        # Escalations and reminders run on the in-memory active set, online or not.
        published = self.writer.published
        self.writer.dispatch(now)
        self.metrics.published.inc(self.writer.published - published)
        if not self.writer.online:
            self._reconnect(stop)
        self._last_tick_ms, self._last_tick_mono = now, time.monotonic()

    def _live(self) -> LiveState:
        """The state the metrics endpoint reports (read from the scrape thread)."""
        writer, engine, now = self.writer, self.engine, self.clock()
        active = list(writer.active.values()) if writer else []
        waiting = [a.raised_ts for a in active if a.status is not AlertStatus.ACKNOWLEDGED]
        try:
            depth, usable = self.outbox.depth(), True
        except sqlite3.Error:
            depth, usable = -1, False
        return LiveState(
            inbox_depth=self.inbox.qsize(),
            outbox_depth=depth,
            database_up=bool(writer and writer.online),
            outbox_usable=usable,
            broker_connected=bool(self.mqtt and self.mqtt.connected),
            ready=self.ready.is_set(),
            oldest_unacknowledged_s=max(0.0, (now - min(waiting)) / 1000) if waiting else 0.0,
            last_tick_s=self._last_tick_ms / 1000,
            last_tick_age_s=time.monotonic() - self._last_tick_mono if self._acting else 0.0,
            triggers=engine.stats.triggers if engine else 0,
            suppressed=self._suppressed(),
            anomaly_baselines=engine.anomaly.baselines() if engine else 0,
            anomaly_bytes=engine.anomaly.memory_bytes() if engine else 0,
        )

    def _suppressed(self) -> dict[str, int]:
        """Inputs not acted on, by reason: the engine's counters besides what it acted on."""
        out = {"invalid": self.stats.invalid}
        if not self.partition.whole:
            out["other_partition"] = self.stats.other_partition
        if self.engine is not None:
            stats = self.engine.stats
            for f in fields(stats):
                value = getattr(stats, f.name)
                if isinstance(value, int) and f.name not in _ACTED_ON:
                    out[f.name] = value
        return out

    def raised(self) -> list[AlertRow]:
        """Alerts this run raised (newest last)."""
        return list(self.writer.raised) if self.writer else []


def _telemetry_senders(fleet: Fleet) -> list[str]:
    """The devices that publish telemetry (every type but the button; contract §1)."""
    return [d.id for d in fleet.devices if d.type is not DeviceType.BUTTON]


def _outbox_path(configured: str, client_id: str, partition: Partition) -> str:
    """The outbox file: configured, else per client id; a partition's gets its suffix."""
    if not configured:
        return default_outbox_path(client_id)
    if partition.whole:
        return configured
    path = Path(configured)
    return str(path.with_name(f"{path.stem}{partition.suffix}{path.suffix}"))


def run_forever(settings: AlertingSettings) -> None:
    """Run until interrupted or terminated (the `eldercare alerting` command).

    SIGTERM stops cleanly: the loop ends, the broker session is left for the next active
    process and closing the lock session hands the lock to the standby at once.
    """
    stop = threading.Event()
    service = AlertingService(settings)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        service.run(stop)
    except KeyboardInterrupt:
        stop.set()
