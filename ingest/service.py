"""The ingest service: broker -> decode -> batch -> database -> acknowledge, with recovery."""

from __future__ import annotations

import logging
import random
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from gateway import DeviceType, ReasonCode
from ingest import pg
from ingest.batch import Batch, DeadLetter, Inbound, build_batch, unknown_devices
from ingest.db import REJECTED, RETRYABLE, BatchWriter, Conn, WriteResult, connect
from ingest.metrics import IngestMetrics
from ingest.migrate import recorded_mode, storage_mode
from ingest.mqtt import Inbox, Subscription
from ingest.registry import load_registry, registry_version
from ingest.settings import IngestSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# /healthz fails when the loop has not gone round for this long: a round is one batch write and
# at most one registry reload, each bounded by the statement timeout (30 s, ingest.pg), plus 60 s.
LIVE_WITHIN_S = 60.0 + 2 * pg.DEFAULT_STATEMENT_TIMEOUT_MS / 1000.0
# This week's and next week's partitions are made sure of this often (plain PostgreSQL): the
# next week's exist days before the first message dated in it.
PREPARE_WEEKS_EVERY_S = 3600.0


# Conversion errors of a value while it is written (a driver dumper refusing it): the rows'
# fault like REJECTED, but no database message, so a lone one is dead-lettered `internal_error`.
_POISON: tuple[type[Exception], ...] = (*REJECTED, ValueError, OverflowError, struct.error)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class _Rejected:
    """A piece of a batch that cannot be stored as it is (see `IngestService._handle`)."""

    error: Exception

    @property
    def reason(self) -> ReasonCode:
        return (
            ReasonCode.DB_REJECTED
            if isinstance(self.error, REJECTED)
            else ReasonCode.INTERNAL_ERROR
        )

    @property
    def detail(self) -> str:
        return f"{type(self.error).__name__}: {self.error}".replace("\x00", "")[:500]


class IngestService:
    """One consumer of the shared subscription; run several for more throughput.

    Example:
        service = IngestService(IngestSettings())
        threading.Thread(target=service.run, args=(stop_event,)).start()
    """

    def __init__(
        self,
        settings: IngestSettings,
        metrics: IngestMetrics | None = None,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or IngestMetrics()
        self._clock_ms = clock_ms
        self._inbox = Inbox(settings.queue_max)
        self._conn: Conn | None = None
        self._writer: BatchWriter | None = None
        self._registry: dict[str, DeviceType] = {}
        self._registry_at = 0.0
        self._registry_version: int | None = None
        self._weeks_at = 0.0
        self._subscription: Subscription | None = None
        self.ready = threading.Event()
        self._tick = time.monotonic()  # the last round of the loop or of a retry

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, then flush what was received and disconnect."""
        if self.settings.metrics_port is not None:
            self.metrics.watch_jobs(self.settings.database_url, self.settings.jobs_refresh_s)
            self.metrics.serve(self.settings.metrics_port, self.settings.metrics_host, self.health)
        try:
            self._consume(stop)
        finally:
            self.metrics.close()

    def health(self) -> tuple[bool, bool]:
        """(live, ready) for /healthz and /readyz.

        Live: the loop (or a database retry) went round within LIVE_WITHIN_S. Ready: started,
        subscribed on the broker, and connected to the database.
        """
        live = time.monotonic() - self._tick <= LIVE_WITHIN_S
        sub, conn = self._subscription, self._conn
        ready = (
            self.ready.is_set()
            and sub is not None
            and sub.subscribed.is_set()
            and conn is not None
            and not conn.closed
        )
        return live, ready

    def _consume(self, stop: threading.Event) -> None:
        self._db_ready(stop)
        if stop.is_set():
            return
        self._subscription = Subscription(self.settings, self._inbox, self._clock_ms)
        self._subscription.start()
        self.ready.set()
        try:
            while not stop.is_set():
                self._tick = time.monotonic()
                items = self._collect(stop)
                if items:
                    self._handle(items, stop)
                self._refresh_registry_if_due(stop)
                self._prepare_weeks_if_due(stop)
        finally:
            self._flush()

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Wait until the shared subscription is acknowledged by the broker (tests, demo)."""
        if not self.ready.wait(timeout_s):
            return False
        assert self._subscription is not None
        return self._subscription.subscribed.wait(timeout_s)

    def subscribed_connections(self) -> int:
        """Broker connections so far whose subscription was acknowledged (0 before the first)."""
        sub = self._subscription
        return sub.connections if sub is not None and sub.subscribed.is_set() else 0

    def refresh_registry(self) -> None:
        """Reload the device registry now (e.g. after `eldercare registry import`)."""
        assert self._conn is not None
        # Read before the rows: a change in between is loaded again next time.
        version = registry_version(self._conn)
        if version is None or version != self._registry_version or not self._registry:
            self._registry = load_registry(self._conn)
            self._registry_version = version
            logger.info("registry loaded: %d device(s)", len(self._registry))
        self._conn.rollback()
        self._registry_at = time.monotonic()

    def _collect(self, stop: threading.Event) -> list[Inbound]:
        """Up to `batch_max` messages, waiting at most `batch_wait_ms` after the first one.

        The batch also closes when nothing has arrived for `batch_idle_ms`: the broker stops
        sending once its in-flight window is full of unacknowledged messages, so waiting out the
        whole `batch_wait_ms` then would only cap throughput at window / batch_wait.
        """
        limit, idle_s = self.settings.batch_max, self.settings.batch_idle_ms / 1e3
        items = self._inbox.take(limit, 0.2)
        if not items:
            return items
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000.0
        while len(items) < limit:
            left = deadline - time.monotonic()
            if left <= 0 or stop.is_set():
                break
            more = self._inbox.take(limit - len(items), min(left, idle_s))
            if not more:
                break
            items += more
        return items

    def _handle(self, items: list[Inbound], stop: threading.Event) -> bool:
        """Store and acknowledge `items`; False when stopped before the database came back.

        A piece the database refuses (a value or constraint, not an outage) is split in
        halves until the refused messages are alone; the rest is stored, each refused message
        is dead-lettered with the database's message, and everything is acknowledged, so one
        poison message never blocks a batch or crash-loops the service. Pieces are stored
        and acknowledged in the order received (MQTT 5 §4.6: PUBACKs in PUBLISH order).
        """
        self.metrics.received.inc(len(items))
        prefix = self.settings.topic_prefix
        if unknown_devices(items, self._registry, prefix) and self._registry_due(
            self.settings.registry_miss_refresh_s
        ):
            self._retry(self.refresh_registry, stop)
        pending = [items]
        while pending:
            piece = pending.pop()
            started = time.perf_counter()
            outcome = self._retry(partial(self._store, piece), stop)
            if outcome is None:
                return False
            if isinstance(outcome, _Rejected):
                if len(piece) > 1:
                    middle = len(piece) // 2
                    pending += [piece[middle:], piece[:middle]]
                    continue
                stored = self._retry(partial(self._dead_letter, piece[0], outcome), stop)
                if stored is None:
                    return False
                outcome = stored
            batch, result = outcome
            assert self._subscription is not None
            self._subscription.ack(piece)
            self.metrics.record(batch, result, time.perf_counter() - started, self._clock_ms())
        return True

    def _store(self, items: list[Inbound]) -> tuple[Batch, WriteResult] | _Rejected:
        batch = build_batch(
            items,
            self._registry,
            self.settings.topic_prefix,
            max_backdate_ms=int(self.settings.max_backdate_days * 86_400_000),
        )
        try:
            return batch, self._write(batch)
        except _POISON as exc:
            if len(items) == 1:
                logger.warning("the database refused a message on %s: %s", items[0].topic, exc)
            return _Rejected(exc)

    def _dead_letter(self, item: Inbound, rejected: _Rejected) -> tuple[Batch, WriteResult]:
        dead = DeadLetter(
            item.received_ms,
            item.topic.replace("\x00", ""),
            item.payload,
            rejected.reason,
            rejected.detail,
        )
        batch = Batch(dead=[dead])
        return batch, self._write(batch)

    def _write(self, batch: Batch) -> WriteResult:
        assert self._conn is not None and self._writer is not None
        return self._writer.write(self._conn, batch)

    def _retry(self, action: Callable[[], T], stop: threading.Event) -> T | None:
        """Run `action` until it succeeds, reconnecting with jittered backoff between tries.

        After `stop`, gives up once `flush_timeout_s` has passed (the broker keeps what was not
        acknowledged) and returns None.
        """
        delay = self.settings.reconnect_min_s
        give_up: float | None = None
        while True:
            self._tick = time.monotonic()
            try:
                if self._conn is None or self._conn.closed:
                    self._open()
                return action()
            except RETRYABLE as exc:
                self.metrics.db_errors.inc()
                logger.warning("database unavailable (%s); retrying in %.1f s", exc, delay)
                self._drop_connection()
            if stop.is_set():
                give_up = give_up or time.monotonic() + self.settings.flush_timeout_s
                if time.monotonic() >= give_up:
                    logger.error("database still unavailable; leaving the rest unacknowledged")
                    return None
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.settings.reconnect_max_s)

    def _open(self) -> None:
        self._conn = connect(self.settings.database_url)
        mode = recorded_mode(self._conn) or storage_mode(self._conn)
        self._conn.rollback()
        if self._writer is None:
            self._writer = BatchWriter(self.settings.write_method, mode)
            logger.info(
                "storage mode %s, write method %s", mode.value, self.settings.write_method.value
            )
        self._writer.forget_connection()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _db_ready(self, stop: threading.Event) -> None:
        self._retry(self.refresh_registry, stop)
        if not stop.is_set():  # a stop while the database was down waits for one retry only
            self._retry(self._prepare_weeks, stop)

    def _prepare_weeks(self) -> None:
        assert self._conn is not None and self._writer is not None
        self._writer.prepare_weeks(self._conn, self._clock_ms())
        self._weeks_at = time.monotonic()

    def _prepare_weeks_if_due(self, stop: threading.Event) -> None:
        if time.monotonic() - self._weeks_at >= PREPARE_WEEKS_EVERY_S and not stop.is_set():
            self._retry(self._prepare_weeks, stop)

    def _registry_due(self, every_s: float) -> bool:
        return time.monotonic() - self._registry_at >= every_s

    def _refresh_registry_if_due(self, stop: threading.Event) -> None:
        if self._registry_due(self.settings.registry_refresh_s):
            self._retry(self.refresh_registry, stop)

    def _flush(self) -> None:
        """Clean stop: take no more, store what was received, acknowledge it, disconnect."""
        sub = self._subscription
        if sub is not None:
            sub.close()
            items = self._inbox.take(self._inbox.qsize(), 0)
            done = threading.Event()
            done.set()
            for start in range(0, len(items), self.settings.batch_max):
                self._handle(items[start : start + self.settings.batch_max], done)
            # Give paho's network thread a moment to send the last PUBACKs.
            time.sleep(0.2)
            sub.stop()
        self._drop_connection()
        logger.info("ingest stopped")
