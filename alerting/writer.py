"""Applies detector actions and dispatch moves: the database first, then the alert feed."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg

from alerting import store
from alerting.dispatch import ActiveAlert, Dispatcher, Move, MoveKind
from alerting.lifecycle import AUTO_CLOSABLE, AlertRow, TransitionError
from alerting.model import Action, Close, Raise
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
    """Keeps the active alerts in view and turns actions and moves into stored transitions."""

    def __init__(
        self, conn: psycopg.Connection[Any], dispatcher: Dispatcher, publish: Publish, prefix: str
    ) -> None:
        self.conn = conn
        self.dispatcher = dispatcher
        self.publish = publish
        self.prefix = prefix
        self.centers: dict[str, CareCenter] = {}
        self.active: dict[str, AlertRow] = {}
        self.raised: list[AlertRow] = []

    def refresh_active(self) -> None:
        """Reload the active alerts (other processes acknowledge and resolve them)."""
        self.active = {a.alert_id: a for a in store.active_alerts(self.conn)}

    def open_counts(self) -> dict[str, int]:
        """Active alerts per centre."""
        return dict(Counter(a.center_id for a in self.active.values()))

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
        """Store one action and publish what changed; returns the alert touched, if any."""
        if isinstance(action, Raise):
            return self._raise(action, now_ms)
        return self._close(action, now_ms)

    def _raise(self, action: Raise, now_ms: int) -> AlertRow | None:
        result = store.raise_alert(self.conn, action, self._route, self._locate, now_ms)
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
        # A repeated press means "still need help": staff see every one.
        if created or changed or alert.kind is AlertKind.SOS:
            publish_alert(self.publish, alert, self.prefix)
        return alert

    def _close(self, action: Close, now_ms: int) -> AlertRow | None:
        if action.status is not AlertStatus.CANCELLED and action.kind not in AUTO_CLOSABLE:
            return None
        alert = store.close_active(
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
        publish_alert(self.publish, alert, self.prefix)
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
        """Store and publish one dispatch move."""
        before = self.active.get(move.alert_id)
        if before is None:
            return None
        d = move.decision
        if move.kind == MoveKind.REMINDER:
            alert = store.remind(self.conn, move.alert_id, now_ms, "reminder: still unanswered")
        else:
            note = "escalated: unanswered" if move.kind == MoveKind.ESCALATE else "centre off duty"
            try:
                alert = store.transition(
                    self.conn,
                    move.alert_id,
                    AlertStatus.ESCALATED,
                    "system",
                    note,
                    now_ms,
                    center=(d.center_id, d.distance_m, d.in_coverage, d.over_capacity),
                    escalate=move.kind == MoveKind.ESCALATE,
                )
            except TransitionError:
                alert = None
        if alert is None:
            self.active.pop(move.alert_id, None)
            return None
        self.active[alert.alert_id] = alert
        logger.info(
            "%s alert %s: %s -> %s", move.kind, alert.alert_id, before.center_id, alert.center_id
        )
        publish_alert(self.publish, alert, self.prefix, before.center_id)
        return alert
