"""What detectors emit: a trigger that raises (or refreshes) an alert, or a clear."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.contract import AlertKind, AlertStatus, Severity

_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


def severity_rank(severity: Severity) -> int:
    """Order severities: low 0 ... critical 3."""
    return _RANK[severity]


@dataclass(frozen=True, slots=True)
class Trigger:
    """A detector's finding about one device.

    Attributes:
        kind: the alert kind.
        severity: how urgent.
        device_id: the device whose message (or silence) triggered it.
        event_ts: device clock of the triggering message, ms; for a condition found on a
            clock tick (silence, inactivity), when the condition began on the platform clock.
        reason: a short human-readable explanation (no names, no vital signs).
        lat: where the device was, when it knows.
        lon: see `lat`.
        event_seq: `seq` of the triggering message: with `device_id` and `event_ts` its
            identity (contract §1); None when no message triggered it.
        episode_ts: for a condition (smoke, wandering, a silence, a low battery, inactivity,
            an anomaly), when it began, ms on the time base its detector runs on; every
            trigger of one episode carries the same start, and the detector starts a new one
            once the condition clears. None for discrete events (an SOS press, a fall), each
            of which deserves its own alert. Once a person closed the alert of an episode,
            further triggers of it raise nothing (see `store.raise_alert`).
    """

    kind: AlertKind
    severity: Severity
    device_id: str
    event_ts: int
    reason: str
    lat: float | None = None
    lon: float | None = None
    event_seq: int | None = None
    episode_ts: int | None = None


@dataclass(frozen=True, slots=True)
class Clear:
    """A condition that closes an active machine-raised alert (or cancels an SOS press)."""

    kind: AlertKind
    device_id: str
    event_ts: int
    status: AlertStatus
    note: str


Finding = Trigger | Clear


@dataclass(frozen=True, slots=True)
class Raise:
    """Raise or refresh the active alert of (elder, kind)."""

    elder_id: str
    trigger: Trigger
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Close:
    """Close the active alert of (elder, kind) raised by `device_id` (any device when None)."""

    elder_id: str
    kind: AlertKind
    status: AlertStatus
    actor: str
    note: str
    event_ts: int
    device_id: str | None = None


Action = Raise | Close
