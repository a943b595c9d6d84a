"""The alert lifecycle (pure): stored alert rows, allowed transitions, and their wire form."""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.alerts import AlertMessage
from gateway.contract import AlertKind, AlertStatus, Severity

ACTIVE = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED)
CLOSED = (AlertStatus.RESOLVED, AlertStatus.CANCELLED)

# Machine-raised alerts that a clearing condition may close on its own; never sos, fall or
# smoke, which a person must see to the end.
AUTO_CLOSABLE = frozenset({AlertKind.DEVICE_OFFLINE, AlertKind.LOW_BATTERY, AlertKind.INACTIVITY})
# Smoke only as the detector's own nuisance close: unverified, cleared within its period.
AUTO_CLOSABLE |= {AlertKind.SMOKE}
# A wearer's cancel closes an alarm only while no person has taken it. In telecare call
# handling (TEC Quality, formerly the TSA, Quality Standards Framework; EN 50134-7) an alarm
# call an operator has answered is closed by that operator with a recorded outcome: a later
# cancel from the device is information for the operator, kept in the alert's history, and
# the alert stays active.
WEARER_CANCELLABLE = (AlertStatus.OPEN,)
# open -> acknowledged -> resolved, plus escalated and cancelled (issue "Alert lifecycle").
# Only the wearer cancels, and only an alert nobody has taken yet.
ALLOWED_FROM: dict[AlertStatus, tuple[AlertStatus, ...]] = {
    AlertStatus.ACKNOWLEDGED: (AlertStatus.OPEN, AlertStatus.ESCALATED),
    AlertStatus.RESOLVED: ACTIVE,
    AlertStatus.CANCELLED: WEARER_CANCELLABLE,
    AlertStatus.ESCALATED: ACTIVE,
}


class TransitionError(ValueError):
    """A transition the lifecycle does not allow, or an alert that does not exist."""


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One stored alert (table `alerts`)."""

    alert_id: str
    kind: AlertKind
    severity: Severity
    status: AlertStatus
    elder_id: str
    device_id: str
    center_id: str
    distance_m: float
    in_coverage: bool
    over_capacity: bool
    lat: float
    lon: float
    event_ts: int
    raised_ts: int
    updated_ts: int
    acked_ts: int | None
    closed_ts: int | None
    escalations: int
    reason: str
    routed_ts: int
    tried_centers: tuple[str, ...]
    last_event_ts: int
    event_seq: int | None = None  # `seq` of the message that raised it (None: no message)
    trigger_count: int = 1  # triggers merged into it, the first included

    @property
    def active(self) -> bool:
        """Open, acknowledged or escalated."""
        return self.status in ACTIVE

    def to_message(self) -> AlertMessage:
        """The contract §2 message for this alert's current state."""
        return AlertMessage(
            alert_id=self.alert_id,
            kind=self.kind,
            severity=self.severity,
            status=self.status,
            elder_id=self.elder_id,
            device_id=self.device_id,
            center_id=self.center_id,
            distance_m=round(self.distance_m, 1),
            in_coverage=self.in_coverage,
            lat=self.lat,
            lon=self.lon,
            event_ts=self.event_ts,
            raised_ts=self.raised_ts,
            updated_ts=self.updated_ts,
            reason=self.reason,
        )

    def with_status(self, status: AlertStatus) -> AlertRow:
        """A copy in another status (for building messages in tests and tools)."""
        return replace(self, status=status)


def check_transition(current: AlertStatus, target: AlertStatus) -> None:
    """Raise TransitionError unless `current -> target` is allowed."""
    if current not in ALLOWED_FROM.get(target, ()):
        raise TransitionError(f"cannot go from {current.value} to {target.value}")
