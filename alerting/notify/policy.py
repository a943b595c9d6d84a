"""What counts as critical, quiet hours, retry back-off and the minimised push payload (pure)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_TIME_ZONE = "Asia/Shanghai"
# A family member's own answer on the alert's history (a note row, see dashboard family routes).
GOING_NOTE = "going"
# Kinds that always reach the family, quiet hours or not: a call for help, a fall and smoke
# are emergencies whatever their severity; other kinds count when raised as critical (the
# detectors raise wandering at night as critical).
ALWAYS_KINDS = frozenset({"sos", "fall", "smoke"})
ALL_KINDS = (
    "sos",
    "fall",
    "wandering",
    "smoke",
    "inactivity",
    "device_offline",
    "low_battery",
    "anomaly",
)
ACTIVE_STATUSES = frozenset({"open", "acknowledged", "escalated"})


class Channel(StrEnum):
    """How a notification travels."""

    PUSH = "push"
    WEBHOOK = "webhook"
    VOICE = "voice"


class Outcome(StrEnum):
    """What one attempt came to."""

    SENT = "sent"
    RETRY = "retry"
    GONE = "gone"  # RFC 8030 §7.3: 404/410, the subscription no longer exists
    FAILED = "failed"
    SKIPPED = "skipped"


def is_critical(kind: str, severity: str) -> bool:
    """Whether an alert is delivered whatever the person's kinds and quiet hours."""
    return severity == "critical" or kind in ALWAYS_KINDS


@dataclass(frozen=True, slots=True)
class Prefs:
    """A person's notification preferences (times are local wall-clock "HH:MM")."""

    kinds: frozenset[str] = frozenset(ALL_KINDS)
    quiet_from: str | None = None
    quiet_to: str | None = None
    time_zone: str = DEFAULT_TIME_ZONE


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def in_quiet_hours(prefs: Prefs, now_ms: int) -> bool:
    """Whether `now_ms` falls in the person's quiet hours, in their time zone.

    A window whose end is before its start wraps midnight (22:00-07:00).
    """
    if not prefs.quiet_from or not prefs.quiet_to:
        return False
    local = dt.datetime.fromtimestamp(now_ms / 1000, ZoneInfo(prefs.time_zone))
    now_min = local.hour * 60 + local.minute
    start, end = _minutes(prefs.quiet_from), _minutes(prefs.quiet_to)
    if start == end:
        return False
    if start < end:
        return start <= now_min < end
    return now_min >= start or now_min < end


def backoff_ms(attempts: int, base_s: float, cap_s: float, rng: random.Random) -> int:
    """Delay before the next attempt after `attempts` failed ones.

    Exponential back-off with "equal jitter" (AWS Architecture Blog, "Exponential Backoff
    and Jitter", 2015): half the capped exponential delay plus a uniform share of the other
    half, so retries of many receivers spread out but never come back at once.
    """
    ceiling_s = min(cap_s, base_s * 2 ** max(attempts - 1, 0))
    return int(1000 * (ceiling_s / 2 + rng.uniform(0, ceiling_s / 2)))


# Contract §2 fields a phone needs to say what happened and to whom; position, distance and
# the reason text stay on the server (the page fetches them for a signed-in member).
_PUSH_FIELDS = (
    "alert_id",
    "kind",
    "severity",
    "status",
    "elder_id",
    "center_id",
    "event_ts",
    "updated_ts",
)


def push_payload(
    alert: Mapping[str, Any], state_key: str, delivery_id: int, receipt: str, by: str | None
) -> dict[str, Any]:
    """The decrypted body of a push message: the alert minimised (well under 3 KB)."""
    body: dict[str, Any] = {"v": 1, **{k: alert[k] for k in _PUSH_FIELDS}}
    body["elder_name"] = alert.get("elder_name", "")
    body["state"] = state_key
    body["taken_by"] = alert.get("taken_by")
    if by is not None:
        body["by"] = by
    body["delivery_id"] = delivery_id
    body["receipt"] = receipt
    return body
