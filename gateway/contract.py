"""Wire-contract v1 vocabulary: device types, events, reason codes and limits."""

from __future__ import annotations

import re
from enum import StrEnum

CONTRACT_VERSION = 1
TOPIC_ROOT = "eldercare/v1"
MAX_PAYLOAD_BYTES = 16 * 1024
# Contract §1: a ts more than 5 minutes ahead of the platform clock is rejected.
MAX_FUTURE_MS = 5 * 60 * 1000
# Contract §1 "Status": offline after 2.5 x heartbeat_s of silence.
OFFLINE_HEARTBEATS = 2.5
DEVICE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")


class DeviceType(StrEnum):
    """The four device types of contract §1."""

    BUTTON = "button"
    SMOKE = "smoke"
    BAND = "band"
    CANE = "cane"


class Channel(StrEnum):
    """The last level of a device topic."""

    TELEMETRY = "telemetry"
    EVENTS = "events"
    STATUS = "status"


class ReasonCode(StrEnum):
    """Dead-letter reason codes of contract §1 "Rejected input", plus the internal one."""

    BAD_TOPIC = "bad_topic"
    TOO_LARGE = "too_large"
    BAD_JSON = "bad_json"
    BAD_SCHEMA = "bad_schema"
    UNKNOWN_DEVICE = "unknown_device"
    TYPE_MISMATCH = "type_mismatch"
    FUTURE_TS = "future_ts"
    # A bug while handling one message.
    INTERNAL_ERROR = "internal_error"
    # Not a contract violation: a message the codec accepts but the database refuses (a value
    # or constraint, SQLSTATE classes 22/23). Ingest stores the rest of its batch and keeps this
    # one, with the database's message as the detail.
    DB_REJECTED = "db_rejected"


class AlertKind(StrEnum):
    """Alert kinds of contract §2."""

    SOS = "sos"
    FALL = "fall"
    WANDERING = "wandering"
    SMOKE = "smoke"
    INACTIVITY = "inactivity"
    DEVICE_OFFLINE = "device_offline"
    LOW_BATTERY = "low_battery"
    ANOMALY = "anomaly"


class Severity(StrEnum):
    """Alert severities of contract §2, most urgent first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class AlertStatus(StrEnum):
    """Alert states of contract §2."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


# Contract §1 "Events": the event names each device type may send.
EVENTS_BY_TYPE: dict[DeviceType, frozenset[str]] = {
    DeviceType.BUTTON: frozenset({"press", "long_press", "cancel", "low_battery"}),
    DeviceType.SMOKE: frozenset({"alarm", "clear", "test", "hush", "fault", "low_battery"}),
    DeviceType.BAND: frozenset({"sos", "removed", "worn", "low_battery"}),
    DeviceType.CANE: frozenset({"sos", "fall_detected", "low_battery"}),
}
