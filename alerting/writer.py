"""Applies detector actions and dispatch moves: stored, then published on the alert feed.

While PostgreSQL is unreachable the same actions and moves are applied to the in-memory
active alerts instead, recorded in the local outbox (alerting.outbox) and published at once:
a page never waits for the database.
"""

from __future__ import annotations

import logging
import queue
import threading
import weakref
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any, TypeVar

import psycopg

from alerting import store
from alerting.dispatch import INCIDENT_KINDS, ActiveAlert, Dispatcher, Move, MoveKind
from alerting.lifecycle import AUTO_CLOSABLE, AlertRow, TransitionError, check_transition
from alerting.model import Action, Close, Raise, severity_rank
from alerting.outbox import Outbox, Transition
from alerting.routing import NoCenterError
from gateway.alerts import encode_alert
from gateway.contract import AlertKind, AlertStatus
from gateway.fleet import CareCenter
from gateway.geo import distance_m
from gateway.topics import alert_topic

logger = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]
# Where an alert goes when no centre at all is on duty (kept, published, and re-routed by
# the off-duty rule as soon as a centre comes back).
UNROUTED = "unrouted"
# A repeated trigger of an active alert that changes nothing staff see is re-published at most
# this often ("still need help"), so a held or hammered button cannot flood a centre's feed.
REFRESH_PUBLISH_S = 30.0
# A database that does not answer a statement in this time is treated as down: a network
# partition would otherwise hold the loop until TCP gives up (ingest.pg: about 20 s).
DB_DEADLINE_S = 5.0
T = TypeVar("T")


class DatabaseThread:
    """One daemon thread that runs database calls in order, each answered through a Future.

    Not a ThreadPoolExecutor: the interpreter joins those workers at exit, so a call hung on a
    partitioned database (a socket that never answers) would keep a stopped process alive for
    ever. A daemon thread is left behind instead; the process exits and the kernel closes the
    socket.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=_serve, args=(self._calls,), name=name, daemon=True).start()
        # An idle thread ends with its owner (as ThreadPoolExecutor's do).
        weakref.finalize(self, self._calls.put, (Future(), _stop, ()))

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue `fn(*args)`; the Future holds its result or exception."""
        future: Future[T] = Future()
        self._calls.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        """Let the thread end after the calls already queued (it does not wait for them)."""
        self._calls.put((Future(), _stop, ()))


def _stop() -> None:
    """The marker that ends a DatabaseThread."""


def _serve(
    calls: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]],
) -> None:
    """A DatabaseThread's loop (holds the queue only, so the owner can be collected)."""
    while True:
        future, fn, args = calls.get()
        if fn is _stop:
            return
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the caller through the Future
            future.set_exception(exc)


def publish_alert(publish: Publish, alert: AlertRow, prefix: str, *extra_centers: str) -> None:
    """Publish an alert's current state on its centre's topic (and on `extra_centers`)."""
    payload = encode_alert(alert.to_message())
    for center_id in dict.fromkeys((alert.center_id, *extra_centers)):
        publish(alert_topic(center_id, prefix), payload)


def to_active(alert: AlertRow) -> ActiveAlert:
    """What dispatch needs of an active alert."""
    return ActiveAlert(
        alert_id=alert.alert_id,
        severity=alert.severity,
        status=alert.status,
        center_id=alert.center_id,
        lat=alert.lat,
        lon=alert.lon,
        routed_ts=alert.routed_ts,
        tried_centers=alert.tried_centers or (alert.center_id,),
    )


class AlertWriter:
    """Keeps the active alerts in view and turns actions and moves into stored transitions.

    Args:
        conn: the database.
        dispatcher: routing and escalation policy.
        publish: sends one alert feed message.
        prefix: the topic prefix.
        outbox: where alerts go while the database is down.
        owns: whether an elder's alerts are this process's (its partition, alerting.partition);
            only those are kept active here, escalated and reminded. Every partition's active
            incidents count towards a centre's load, read from the database on each refresh.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        dispatcher: Dispatcher,
        publish: Publish,
        prefix: str,
        outbox: Outbox | None = None,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self.conn = conn
        self.dispatcher = dispatcher
        self.publish = publish
        self.prefix = prefix
        self.outbox = outbox
        # False from the first failed statement until the service has reconnected and
        # reconciled the outbox: everything goes to memory and the outbox meanwhile.
        self.online = True
        self.centers: dict[str, CareCenter] = {}
        self.active: dict[str, AlertRow] = {}
        self.owns = owns
        # Active incidents per centre of the other partitions, as of the last refresh.
        self.others_open: Counter[str] = Counter()
        self.raised: list[AlertRow] = []
        self.published = 0
        self.db_deadline_s: float | None = DB_DEADLINE_S
        self._worker = DatabaseThread("alert-db")
        self._abandoned: Future[Any] | None = None
        self._last_published: dict[str, tuple[int, str]] = {}  # id -> (updated_ts, reason)

    def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one database call within `db_deadline_s` (None: without a deadline).

        Raises:
            psycopg.OperationalError: the database failed, or did not answer in time (the
                call is abandoned on its own thread and the connection must be replaced).
        """
        if self.db_deadline_s is None:
            return fn(*args)
        future = self._worker.submit(fn, *args)
        try:
            return future.result(timeout=self.db_deadline_s)
        except FutureTimeout:
            self._abandoned = future
            self._worker.shutdown()
            self._worker = DatabaseThread("alert-db")
            raise psycopg.OperationalError(
                f"no answer from the database in {self.db_deadline_s} s"
            ) from None

    def hung(self) -> bool:
        """Whether an abandoned call still holds the current connection."""
        return self._abandoned is not None and not self._abandoned.done()

    def refresh_active(self) -> None:
        """Reload the active alerts (other processes acknowledge and resolve them)."""
        alerts = self.db(store.active_alerts, self.conn)
        if self.owns is None:
            self.active = {a.alert_id: a for a in alerts}
            return
        owns = self.owns
        self.active = {a.alert_id: a for a in alerts if owns(a.elder_id)}
        self.others_open = Counter(
            a.center_id for a in alerts if a.kind in INCIDENT_KINDS and not owns(a.elder_id)
        )

    def open_counts(self) -> dict[str, int]:
        """Active incidents (sos, fall, smoke, wandering) per centre: what uses capacity.

        Every partition's: ours live, the others' as of the last refresh (one tick old).
        """
        counts = Counter(a.center_id for a in self.active.values() if a.kind in INCIDENT_KINDS)
        counts.update(self.others_open)
        return dict(counts)

    def _route(self, lat: float, lon: float) -> tuple[str, float, bool, bool]:
        try:
            d = self.dispatcher.route(lat, lon, self.open_counts())
        except NoCenterError:
            logger.warning("no care centre on duty: alert kept unrouted")
            return UNROUTED, 0.0, False, True
        return d.center_id, d.distance_m, d.in_coverage, d.over_capacity

    def _locate(self, center_id: str, lat: float, lon: float) -> tuple[float, bool]:
        center = self.centers.get(center_id)
        if center is None:
            return 0.0, False
        dist = distance_m(lat, lon, center.lat, center.lon)
        return dist, dist <= center.coverage_radius_m

    def apply(self, action: Action, now_ms: int) -> AlertRow | None:
        """Store one action and publish what changed; returns the alert touched, if any.

        Raises:
            psycopg.OperationalError: the database failed and there is no outbox.
        """
        if self.online or self.outbox is None:
            try:
                if isinstance(action, Raise):
                    return self._raise(action, now_ms)
                return self._close(action, now_ms)
            except psycopg.OperationalError:
                if self.outbox is None:
                    raise
                self._went_offline()
        if isinstance(action, Raise):
            return self._raise_offline(action, now_ms)
        return self._close_offline(action, now_ms)

    def _went_offline(self) -> None:
        if self.online and self.outbox is not None:
            logger.warning("database unavailable: alerts go to the outbox %s", self.outbox.path)
        self.online = False

    def _publish(self, alert: AlertRow, *extra_centers: str) -> None:
        publish_alert(self.publish, alert, self.prefix, *extra_centers)
        self.published += 1
        if alert.active:
            self._last_published[alert.alert_id] = (alert.updated_ts, alert.reason)
        else:
            self._last_published.pop(alert.alert_id, None)

    def announce(self, alert: AlertRow, *extra_centers: str) -> None:
        """Publish an alert's current state (e.g. after the outbox merged it)."""
        self._publish(alert, *extra_centers)

    def _refresh_due(self, alert: AlertRow, now_ms: int) -> bool:
        """Whether a repeated trigger is worth a feed message: new reason, or a while since."""
        last = self._last_published.get(alert.alert_id)
        if last is None or last[1] != alert.reason:
            return True
        return now_ms - last[0] >= REFRESH_PUBLISH_S * 1000

    def _raise(self, action: Raise, now_ms: int) -> AlertRow | None:
        result = self.db(store.raise_alert, self.conn, action, self._route, self._locate, now_ms)
        if result is None:
            return None
        alert, created, changed = result
        self.active[alert.alert_id] = alert
        if created:
            self.raised.append(alert)
            logger.info(
                "raised %s %s alert %s -> %s",
                alert.severity.value,
                alert.kind.value,
                alert.alert_id,
                alert.center_id,
            )
        # A repeated press means "still need help": staff see it, at a bounded rate.
        if created or changed or (alert.kind is AlertKind.SOS and self._refresh_due(alert, now_ms)):
            self._publish(alert)
        return alert

    def _close(self, action: Close, now_ms: int) -> AlertRow | None:
        if action.status is not AlertStatus.CANCELLED and action.kind not in AUTO_CLOSABLE:
            return None
        alert = self.db(
            store.close_active,
            self.conn,
            action.elder_id,
            action.kind,
            action.status,
            action.actor,
            action.note,
            now_ms,
            action.device_id,
        )
        if alert is None:
            return None
        self.active.pop(alert.alert_id, None)
        logger.info("%s alert %s: %s", alert.status.value, alert.alert_id, action.note)
        self._publish(alert)
        return alert

    def dispatch(self, now_ms: int) -> list[AlertRow]:
        """Apply the escalations, reminders and off-duty re-routes that are due."""
        alerts = [to_active(a) for a in self.active.values()]
        out = []
        for move in self.dispatcher.due_moves(alerts, self.open_counts(), now_ms):
            alert = self.apply_move(move, now_ms)
            if alert is not None:
                out.append(alert)
        return out

    def apply_move(self, move: Move, now_ms: int) -> AlertRow | None:
        """Store and publish one dispatch move (in memory and the outbox while offline)."""
        before = self.active.get(move.alert_id)
        if before is None:
            return None
        if not self.online and self.outbox is not None:
            return self._move_offline(before, move, now_ms)
        try:
            return self._move(before, move, now_ms)
        except psycopg.OperationalError:
            if self.outbox is None:
                raise
            self._went_offline()
        return self._move_offline(before, move, now_ms)

    def _move(self, before: AlertRow, move: Move, now_ms: int) -> AlertRow | None:
        d = move.decision
        if move.kind == MoveKind.REMINDER:
            note = "reminder: still unanswered"
            alert = self.db(store.remind, self.conn, move.alert_id, now_ms, note)
        else:
            note = "escalated: unanswered" if move.kind == MoveKind.ESCALATE else "centre off duty"
            center = (d.center_id, d.distance_m, d.in_coverage, d.over_capacity)
            escalate = move.kind == MoveKind.ESCALATE

            def escalated() -> AlertRow:
                return store.transition(
                    self.conn,
                    move.alert_id,
                    AlertStatus.ESCALATED,
                    "system",
                    note,
                    now_ms,
                    center=center,
                    escalate=escalate,
                )

            try:
                alert = self.db(escalated)
            except TransitionError:
                alert = None
        if alert is None:
            self.active.pop(move.alert_id, None)
            return None
        self.active[alert.alert_id] = alert
        logger.info(
            "%s alert %s: %s -> %s", move.kind, alert.alert_id, before.center_id, alert.center_id
        )
        self._publish(alert, before.center_id)
        return alert

    # In memory, while the database is down: the same decisions as store.raise_alert,
    # store.close_active, store.transition and store.remind, recorded in the outbox.

    def _keep(self, alert: AlertRow, transition: Transition | None) -> AlertRow:
        assert self.outbox is not None
        self.outbox.record(alert, transition)
        if alert.active:
            self.active[alert.alert_id] = alert
        else:
            self.active.pop(alert.alert_id, None)
        return alert

    def _raise_offline(self, action: Raise, now_ms: int) -> AlertRow:
        trig = action.trigger
        current = next(
            (
                a
                for a in self.active.values()
                if (a.elder_id, a.kind) == (action.elder_id, trig.kind)
            ),
            None,
        )
        if current is not None:
            up = severity_rank(trig.severity) > severity_rank(current.severity)
            moved = abs(action.lat - current.lat) + abs(action.lon - current.lon) > 2e-4  # ~20 m
            dist_m, in_cov = self._locate(current.center_id, action.lat, action.lon)
            alert = replace(
                current,
                severity=trig.severity if up else current.severity,
                lat=action.lat,
                lon=action.lon,
                distance_m=dist_m,
                in_coverage=in_cov,
                reason=trig.reason,
                updated_ts=now_ms,
                last_event_ts=max(current.last_event_ts, trig.event_ts),
            )
            self._keep(alert, None)
            if up or moved or (alert.kind is AlertKind.SOS and self._refresh_due(alert, now_ms)):
                self._publish(alert)
            return alert
        center_id, dist_m, in_cov, over = self._route(action.lat, action.lon)
        alert = AlertRow(
            alert_id=store.new_alert_id(),
            kind=trig.kind,
            severity=trig.severity,
            status=AlertStatus.OPEN,
            elder_id=action.elder_id,
            device_id=trig.device_id,
            center_id=center_id,
            distance_m=dist_m,
            in_coverage=in_cov,
            over_capacity=over,
            lat=action.lat,
            lon=action.lon,
            event_ts=trig.event_ts,
            raised_ts=now_ms,
            updated_ts=now_ms,
            acked_ts=None,
            closed_ts=None,
            escalations=0,
            reason=trig.reason,
            routed_ts=now_ms,
            tried_centers=(center_id,),
            last_event_ts=trig.event_ts,
        )
        self._keep(alert, Transition(None, trig.device_id, trig.reason))
        self.raised.append(alert)
        logger.warning(
            "raised %s %s alert %s -> %s while the database is down",
            alert.severity.value,
            alert.kind.value,
            alert.alert_id,
            alert.center_id,
        )
        self._publish(alert)
        return alert

    def _close_offline(self, action: Close, now_ms: int) -> AlertRow | None:
        if action.status is not AlertStatus.CANCELLED and action.kind not in AUTO_CLOSABLE:
            return None
        current = next(
            (
                a
                for a in self.active.values()
                if (a.elder_id, a.kind) == (action.elder_id, action.kind)
                and action.device_id in (None, a.device_id)
            ),
            None,
        )
        if current is None:
            return None
        try:
            check_transition(current.status, action.status)
        except TransitionError:
            return None
        alert = replace(current, status=action.status, updated_ts=now_ms, closed_ts=now_ms)
        self._keep(alert, Transition(current.status, action.actor, action.note))
        logger.info("%s alert %s: %s (offline)", alert.status.value, alert.alert_id, action.note)
        self._publish(alert)
        return alert

    def _move_offline(self, before: AlertRow, move: Move, now_ms: int) -> AlertRow:
        d = move.decision
        if move.kind == MoveKind.REMINDER:
            alert = replace(before, routed_ts=now_ms, updated_ts=now_ms)
            note = "reminder: still unanswered"
        else:
            escalate = move.kind == MoveKind.ESCALATE
            note = "escalated: unanswered" if escalate else "centre off duty"
            tried = before.tried_centers
            alert = replace(
                before,
                status=AlertStatus.ESCALATED,
                updated_ts=now_ms,
                center_id=d.center_id,
                distance_m=d.distance_m,
                in_coverage=d.in_coverage,
                over_capacity=d.over_capacity,
                routed_ts=now_ms,
                tried_centers=tried if d.center_id in tried else (*tried, d.center_id),
                escalations=before.escalations + int(escalate),
            )
        self._keep(alert, Transition(before.status, "system", note))
        logger.warning(
            "%s alert %s: %s -> %s while the database is down",
            move.kind,
            alert.alert_id,
            before.center_id,
            alert.center_id,
        )
        self._publish(alert, before.center_id)
        return alert
