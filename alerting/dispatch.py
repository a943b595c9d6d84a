"""Dispatch policy: route new alerts, escalate unanswered ones, re-route from off-duty centres.

Pure: the caller passes the centres, the active alerts, the per-centre load and the clock, and
applies the returned `Move`s (to the database and the alert feed) itself.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from alerting.routing import CenterIndex, NoCenterError, RouteDecision
from gateway import AlertKind, AlertStatus, CareCenter, Severity
from gateway.geo import distance_m

logger = logging.getLogger(__name__)

# Answer-time deadlines before an unacknowledged alert goes to the next centre. Critical: 60 s,
# the telecare call-handling standard (TEC Quality, formerly TSA, Quality Standards Framework:
# 97.5 % of alarm calls answered within 60 s and 99 % within 180 s; EN 50134-7 application
# guidelines for social alarm systems). Lower severities get proportionally more time.
DEFAULT_DEADLINES_S: Mapping[Severity, float] = MappingProxyType(
    {Severity.CRITICAL: 60.0, Severity.HIGH: 120.0, Severity.MEDIUM: 300.0, Severity.LOW: 900.0}
)
# What a centre's capacity counts: incidents that need a responder to go out. Notices
# (low battery, device offline, inactivity, anomaly) are worked from the desk and never
# displace a critical alert (EN 50134-7 separates alarm calls from technical notices).
INCIDENT_KINDS = frozenset({AlertKind.SOS, AlertKind.FALL, AlertKind.SMOKE, AlertKind.WANDERING})
ACTIVE_STATUSES = frozenset({AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED})
UNANSWERED_STATUSES = frozenset({AlertStatus.OPEN, AlertStatus.ESCALATED})
_URGENCY = {s: rank for rank, s in enumerate(Severity)}


class MoveKind(StrEnum):
    """Why an active alert changes hands (or is announced again)."""

    ESCALATE = "escalate"
    REMINDER = "reminder"
    REROUTE_OFF_DUTY = "reroute_off_duty"


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """What dispatch needs to know of one active (open/acknowledged/escalated) alert."""

    alert_id: str
    severity: Severity
    status: AlertStatus
    center_id: str
    lat: float
    lon: float
    routed_ts: int  # platform ms when last routed, escalated or reminded
    tried_centers: tuple[str, ...]  # every centre it has been routed to, in order


@dataclass(frozen=True, slots=True)
class Move:
    """One change the caller must apply to an active alert."""

    alert_id: str
    kind: str  # a MoveKind: "escalate" | "reminder" | "reroute_off_duty"
    decision: RouteDecision  # the new centre (same centre for a reminder)


class Dispatcher:
    """Routing and escalation over one set of care centres.

    Args:
        centers: The care centres (all on duty until `set_on_duty` says otherwise).
        deadlines_s: Per-severity answer deadlines overriding `DEFAULT_DEADLINES_S`.
        reminder_s: Interval of reminders once every suitable centre has been tried; by
            default the alert's own deadline.
    """

    def __init__(
        self,
        centers: Iterable[CareCenter],
        deadlines_s: Mapping[Severity, float] | None = None,
        reminder_s: float | None = None,
    ) -> None:
        self._deadlines_s = {**DEFAULT_DEADLINES_S, **(deadlines_s or {})}
        if any(v <= 0 for v in self._deadlines_s.values()):
            raise ValueError("deadlines must be positive")
        if reminder_s is not None and reminder_s <= 0:
            raise ValueError("reminder_s must be positive")
        self._reminder_s = reminder_s
        self._off_duty: set[str] = set()
        self._index = CenterIndex(centers)

    @property
    def index(self) -> CenterIndex:
        """The spatial index of the current centres."""
        return self._index

    def deadline_s(self, severity: Severity) -> float:
        """Seconds an alert of this severity may stay unacknowledged at one centre."""
        return self._deadlines_s[severity]

    def reminder_interval_s(self, severity: Severity) -> float:
        """Seconds between reminders once no untried centre is left."""
        return self._reminder_s if self._reminder_s is not None else self._deadlines_s[severity]

    def set_centers(self, centers: Iterable[CareCenter]) -> None:
        """Replace the centres and rebuild the index; duty flags are kept by centre id."""
        self._index = CenterIndex(centers)

    def set_on_duty(self, center_id: str, on_duty: bool) -> None:
        """Put a centre on or off duty (a filter: the index is not rebuilt)."""
        if on_duty:
            self._off_duty.discard(center_id)
        else:
            self._off_duty.add(center_id)

    def on_duty(self, center_id: str) -> bool:
        """Whether the centre is known and on duty."""
        return center_id in self._index.by_id and center_id not in self._off_duty

    def route(
        self, lat: float, lon: float, open_counts: Mapping[str, int], exclude: Collection[str] = ()
    ) -> RouteDecision:
        """Route one alert at (lat, lon) to the nearest suitable on-duty centre.

        Args:
            lat: Alert latitude (the device's last known position, else the elder's home).
            lon: Alert longitude.
            open_counts: Active alerts per centre id (missing ids count as 0).
            exclude: Centres not to use (e.g. those already tried).

        Raises:
            NoCenterError: when no centre is on duty outside `exclude`.
        """
        unusable = self._off_duty if not exclude else self._off_duty.union(exclude)
        return self._index.route(lat, lon, open_counts, unusable)

    def route_many(
        self, points: Sequence[tuple[float, float]], open_counts: Mapping[str, int]
    ) -> list[RouteDecision]:
        """Route a batch of new alerts in order, each taking a slot before the next.

        Raises:
            NoCenterError: when no centre is on duty.
        """
        return self._index.route_many(points, open_counts, self._off_duty)

    def due_moves(
        self, alerts: Iterable[ActiveAlert], open_counts: Mapping[str, int], now_ms: int
    ) -> list[Move]:
        """The escalations, reminders and off-duty re-routes due at `now_ms`.

        Alerts are considered most urgent first, and each move takes its slot at the new
        centre before the next alert is routed, so scarce capacity goes to critical alerts.
        """
        counts = dict(open_counts)
        moves = []
        for alert in sorted(alerts, key=lambda a: (_URGENCY[a.severity], a.routed_ts, a.alert_id)):
            move = self._move_for(alert, counts, now_ms)
            if move is None:
                continue
            new_id = move.decision.center_id
            if new_id != alert.center_id:
                counts[alert.center_id] = max(0, counts.get(alert.center_id, 0) - 1)
                counts[new_id] = counts.get(new_id, 0) + 1
            moves.append(move)
        return moves

    def _move_for(self, alert: ActiveAlert, counts: Mapping[str, int], now_ms: int) -> Move | None:
        if alert.status not in ACTIVE_STATUSES:
            return None
        tried = {alert.center_id, *alert.tried_centers}
        if not self.on_duty(alert.center_id):
            return self._reroute(alert, counts, tried)
        if alert.status not in UNANSWERED_STATUSES:
            return None
        elapsed_s = (now_ms - alert.routed_ts) / 1000
        if self._has_untried(tried):
            if elapsed_s < self.deadline_s(alert.severity):
                return None
            decision = self.route(alert.lat, alert.lon, counts, tried)
            return Move(alert.alert_id, MoveKind.ESCALATE, decision)
        if elapsed_s < self.reminder_interval_s(alert.severity):
            return None
        return Move(alert.alert_id, MoveKind.REMINDER, self._stay(alert, counts))

    def _reroute(
        self, alert: ActiveAlert, counts: Mapping[str, int], tried: set[str]
    ) -> Move | None:
        try:
            exclude = tried if self._has_untried(tried) else ()
            decision = self.route(alert.lat, alert.lon, counts, exclude)
        except NoCenterError:
            logger.warning(
                "alert %s: centre %s is off duty and no centre is on duty to take it",
                alert.alert_id,
                alert.center_id,
            )
            return None
        return Move(alert.alert_id, MoveKind.REROUTE_OFF_DUTY, decision)

    def _has_untried(self, tried: set[str]) -> bool:
        on_duty_total = len(self._index) - sum(1 for c in self._off_duty if c in self._index.by_id)
        return on_duty_total > sum(1 for c in tried if self.on_duty(c))

    def _stay(self, alert: ActiveAlert, counts: Mapping[str, int]) -> RouteDecision:
        center = self._index.by_id[alert.center_id]
        d_m = distance_m(alert.lat, alert.lon, center.lat, center.lon)
        return RouteDecision(
            center.id,
            d_m,
            d_m <= center.coverage_radius_m,
            counts.get(center.id, 0) > center.capacity,
        )
