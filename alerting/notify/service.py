"""The notification sender: plans each alert event into the outbox and delivers it.

Fed by the commit-ordered `alert_transitions` ids (migration 030) with LISTEN/NOTIFY only as
a wake-up, like the dashboard's feed: the table is both the alert's history and its outbox,
written in the transaction of every alert change; the planner moves its cursor in the same
transaction as the deliveries it stores. Unlike the MQTT alert topics, this also carries the
console's notes (a family member's "I'm going") and survives the notifier being down for
any length of time. Deliveries are leased, so a sender killed mid-request leaves them due
again after the lease: delivered at least once, always under the same delivery id.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import requests

from alerting.notify import db, planner, senders
from alerting.notify.metrics import NotifyMetrics
from alerting.notify.policy import Channel, Outcome, backoff_ms, push_payload
from alerting.notify.settings import NotifySettings
from alerting.notify.vapid import load_key, public_key_b64
from ingest.pg import connect

logger = logging.getLogger(__name__)
CHANNEL = "alert_feed"
PLAN_PAGE = 200


def wall_ms() -> int:
    """The platform clock, ms since the epoch."""
    return time.time_ns() // 1_000_000


def delivery_msg_id(delivery_id: int) -> str:
    """The stable id of a delivery on the wire (`webhook-id`, push `delivery_id`)."""
    return f"msg_nd{delivery_id}"


def webhook_body(c: db.Claimed, now_ms: int) -> dict[str, Any]:
    """The Standard Webhooks payload shape: type, timestamp, data."""
    stamp = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).isoformat()
    data = push_payload(c.payload, c.state_key, c.id, "", None)
    data.pop("receipt")
    data["channel"] = c.channel
    kind = "alert.call" if c.channel == Channel.VOICE else f"alert.{c.state_key.split(':')[0]}"
    return {"type": kind, "timestamp": stamp, "data": data}


class Notifier:
    """Planner and sender of one process (several processes may run; leases keep them apart)."""

    def __init__(
        self,
        settings: NotifySettings,
        *,
        clock: Callable[[], int] = wall_ms,
        rng: random.Random | None = None,
        metrics: NotifyMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or NotifyMetrics()
        self.clock = clock
        self.rng = rng or random.Random()
        self.key = load_key(settings)
        self.stop_event = threading.Event()
        self.wake_sender = threading.Event()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="notify-http")
        self._threads: list[threading.Thread] = []

    def _connect(self, autocommit: bool = True) -> psycopg.Connection[Any]:
        return connect(
            self.settings.database_url,
            autocommit=autocommit,
            statement_timeout_ms=self.settings.statement_timeout_ms,
        )

    # -- planning ---------------------------------------------------------------------------

    def plan_once(self, conn: psycopg.Connection[Any]) -> int:
        """Plan one page of events after the cursor; returns how many events were read."""
        voice_ms = int(self.settings.voice_after_s * 1000)
        with conn.transaction():
            after = db.lock_cursor(conn)
            events = db.events_after(conn, after, PLAN_PAGE)
            now = self.clock()
            for event in events:
                family = db.family_of(conn, str(event.alert["elder_id"]))
                hooks = db.center_webhooks(conn, str(event.alert["center_id"]))
                planned = planner.plan(event, family, hooks, now, voice_ms)
                db.store_planned(conn, event, planned, now)
            if events:
                db.move_cursor(conn, events[-1].event_id)
        if events:
            self.metrics.planned.inc(len(events))
            self.wake_sender.set()
        return len(events)

    def _plan_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                with self._connect() as listen, self._connect() as conn:
                    db.publish_public_key(conn, public_key_b64(self.key), self.clock())
                    db.cursor_position(conn)
                    listen.execute(f"LISTEN {CHANNEL}")
                    while not self.stop_event.is_set():
                        self.metrics.beat("plan")
                        while self.plan_once(conn) == PLAN_PAGE:
                            pass
                        for _ in listen.notifies(timeout=self.settings.poll_s, stop_after=1):
                            pass
            except psycopg.Error as exc:
                logger.warning("notify: planner lost the database (%s); retrying", exc)
                self.metrics.beat("plan", database_up=False)
                self.stop_event.wait(1.0)

    # -- sending ----------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # Proxies come from the settings only: reading them from the environment costs
            # ~2 ms per request in requests (measured with cProfile), a third of a push.
            session.trust_env = False
            if self.settings.proxy_url:
                session.proxies = {
                    "http": self.settings.proxy_url,
                    "https": self.settings.proxy_url,
                }
            self._local.session = session
        return session

    def _attempt(self, c: db.Claimed, voice: dict[str, tuple[str, int | None, bool]]) -> db.Result:
        start = time.monotonic()
        cfg = self.settings
        if c.target is None:
            answer = senders.Answer(Outcome.FAILED, None, "target removed")
        elif c.channel == Channel.VOICE and not planner.voice_still_needed(
            *voice.get(c.alert_id, ("resolved", None, False))
        ):
            answer = senders.Answer(Outcome.SKIPPED, None, "taken before the call")
        elif c.channel == Channel.PUSH:
            body = push_payload(c.payload, c.state_key, c.id, c.receipt, _by(c.state_key))
            answer = senders.send_push(
                self._session(), c.target, body, self.key, cfg.vapid_subject,
                ttl_s=cfg.push_ttl_s, urgent=c.urgent, timeout_s=cfg.http_timeout_s,
            )  # fmt: skip
        else:
            now = self.clock()
            answer = senders.send_webhook(
                self._session(), c.target[0], c.target[1], delivery_msg_id(c.id),
                webhook_body(c, now), now_s=now // 1000, timeout_s=cfg.http_timeout_s,
            )  # fmt: skip
        outcome, retry_at = answer.outcome, None
        if outcome is Outcome.RETRY:
            if c.attempts >= cfg.max_attempts:
                outcome = Outcome.FAILED
            else:
                delay = backoff_ms(c.attempts, cfg.retry_base_s, cfg.retry_cap_s, self.rng)
                retry_at = self.clock() + delay
        gone = c.target_id if outcome is Outcome.GONE and c.channel == Channel.PUSH else None
        return db.Result(
            c.id, outcome, answer.status_code, answer.error,
            int((time.monotonic() - start) * 1000), retry_at, gone,
        )  # fmt: skip

    def send_once(self, conn: psycopg.Connection[Any]) -> int:
        """Claim due deliveries, attempt them in parallel and record every attempt."""
        cfg = self.settings
        claimed = db.claim(conn, self.clock(), int(cfg.lease_s * 1000), cfg.batch)
        if not claimed:
            return 0
        voice_ids = [c.alert_id for c in claimed if c.channel == Channel.VOICE]
        voice = db.voice_state(conn, voice_ids) if voice_ids else {}
        results = list(self._pool.map(lambda c: self._attempt(c, voice), claimed))
        db.record(conn, results, self.clock())
        for c, result in zip(claimed, results, strict=True):
            self.metrics.attempts.labels(str(c.channel), result.outcome.value).inc()
        return len(claimed)

    def _send_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                with self._connect() as conn:
                    while not self.stop_event.is_set():
                        self.metrics.beat("send")
                        if self.send_once(conn) == 0:
                            self.wake_sender.wait(self.settings.poll_s)
                            self.wake_sender.clear()
            except psycopg.Error as exc:
                logger.warning("notify: sender lost the database (%s); retrying", exc)
                self.metrics.beat("send", database_up=False)
                self.stop_event.wait(1.0)

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the planner and the sender threads."""
        self._threads = [
            threading.Thread(target=self._plan_loop, name="notify-plan", daemon=True),
            threading.Thread(target=self._send_loop, name="notify-send", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def live_within_s(self) -> float:
        """How long a loop may go without a round before /healthz fails: the longest round of
        attempts (`batch` claims over `workers` threads, each up to `http_timeout_s`) plus 60 s."""
        s = self.settings
        return 60.0 + s.http_timeout_s * math.ceil(s.batch / s.workers)

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set (the shape of the other services' `run`); serves /metrics,
        /healthz and /readyz on `NOTIFY_METRICS_HOST`:`NOTIFY_METRICS_PORT` when a port is set."""
        s = self.settings
        if s.metrics_port is not None:
            self.metrics.serve(s.metrics_port, s.metrics_host, self.live_within_s())
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()
            self.metrics.close()

    def stop(self) -> None:
        """Stop both threads (an attempt in flight finishes first)."""
        self.stop_event.set()
        self.wake_sender.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self._pool.shutdown(wait=True)


def _by(state_key: str) -> str | None:
    return state_key.split(":", 1)[1] if state_key.startswith("going:") else None
