"""Pure core of ingest: raw MQTT messages in, typed rows, dead letters and last-seen updates out."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from gateway import (
    BandTelemetry,
    CaneTelemetry,
    DeviceType,
    Event,
    Message,
    PayloadError,
    ReasonCode,
    SmokeTelemetry,
    Status,
    decode,
    parse_device_topic,
)

logger = logging.getLogger(__name__)

# Storage column limits: `real` is IEEE float4, `integer` is int32. A finite JSON number outside
# them cannot be stored, so it is rejected here instead of failing the whole batch in the database.
_FLOAT4_MAX = 3.4028234e38
_INT32_MAX = 2**31 - 1


class Kind(StrEnum):
    """The stored series; the value is the table name."""

    SMOKE = "smoke_telemetry"
    BAND = "band_telemetry"
    CANE = "cane_telemetry"
    EVENT = "device_events"
    STATUS = "device_status"


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message as received from the broker.

    Attributes:
        topic: the MQTT topic.
        payload: the raw bytes.
        received_ms: platform clock at receipt, ms.
        qos: 0 or 1.
        mid: the MQTT packet identifier (to acknowledge after commit).
        generation: which broker connection delivered it (acks go only to the same one).
    """

    topic: str
    payload: bytes
    received_ms: int
    qos: int = 0
    mid: int = 0
    generation: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message, kept with its raw bytes (contract §1 "Rejected input")."""

    received_ms: int
    topic: str
    payload: bytes
    reason: ReasonCode
    detail: str


@dataclass(slots=True)
class LastSeen:
    """What one batch says about a device's liveness and battery."""

    device_id: str
    last_seen_ms: int
    last_ts: int | None = None
    online: bool | None = None
    status_ms: int | None = None
    heartbeat_s: int | None = None
    battery_pct: float | None = None
    battery_ts: int | None = None

    def merge(self, message: Message, received_ms: int) -> None:
        """Fold one accepted message in (newest wins, by device time where there is one)."""
        self.last_seen_ms = max(self.last_seen_ms, received_ms)
        ts = message.ts
        if ts is not None:
            self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        when = ts if ts is not None else received_ms
        if message.battery_pct is not None and (self.battery_ts is None or when >= self.battery_ts):
            self.battery_pct, self.battery_ts = message.battery_pct, when
        if isinstance(message, Status) and (
            self.status_ms is None or received_ms >= self.status_ms
        ):
            self.online, self.status_ms = message.online, received_ms
            if message.heartbeat_s is not None:
                self.heartbeat_s = message.heartbeat_s


@dataclass(slots=True)
class Batch:
    """Everything one batch of inbound messages turns into."""

    rows: dict[Kind, list[tuple[Message, int]]] = field(
        default_factory=lambda: {kind: [] for kind in Kind}
    )
    dead: list[DeadLetter] = field(default_factory=list)
    last_seen: dict[str, LastSeen] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        """How many messages decoded into rows."""
        return sum(len(rows) for rows in self.rows.values())

    def add(self, message: Message, received_ms: int) -> None:
        """Add an accepted message to its series and to the last-seen summary."""
        self.rows[kind_of(message)].append((message, received_ms))
        seen = self.last_seen.get(message.device_id)
        if seen is None:
            seen = self.last_seen[message.device_id] = LastSeen(message.device_id, received_ms)
        seen.merge(message, received_ms)


def kind_of(message: Message) -> Kind:
    """The series a decoded message is stored in."""
    if isinstance(message, Status):
        return Kind.STATUS
    if isinstance(message, Event):
        return Kind.EVENT
    if isinstance(message, SmokeTelemetry):
        return Kind.SMOKE
    if isinstance(message, BandTelemetry):
        return Kind.BAND
    return Kind.CANE


def _check_float4(value: float | None, name: str) -> None:
    if value is not None and abs(value) > _FLOAT4_MAX:
        raise PayloadError(ReasonCode.BAD_SCHEMA, f"{name} is beyond the storable range")


def _check_int32(value: int | None, name: str) -> None:
    if value is not None and value > _INT32_MAX:
        raise PayloadError(ReasonCode.BAD_SCHEMA, f"{name} is beyond the storable range")


def check_storable(message: Message) -> None:
    """Reject values the codec accepts but the typed columns cannot hold.

    Raises:
        PayloadError: `bad_schema`, naming the field.
    """
    _check_float4(message.battery_pct, "battery_pct")
    if isinstance(message, SmokeTelemetry):
        _check_float4(message.smoke_db_m, "smoke_db_m")
        _check_float4(message.temp_c, "temp_c")
    elif isinstance(message, BandTelemetry):
        _check_float4(message.hacc_m, "hacc_m")
        _check_int32(message.hr_bpm, "hr_bpm")
        _check_int32(message.steps, "steps")
    elif isinstance(message, CaneTelemetry):
        _check_float4(message.hacc_m, "hacc_m")
        _check_int32(message.hr_bpm, "hr_bpm")
        if any(abs(c) > _FLOAT4_MAX for sample in message.accel_g for c in sample):
            raise PayloadError(ReasonCode.BAD_SCHEMA, "accel_g is beyond the storable range")
    elif isinstance(message, Status):
        _check_float4(message.rssi_dbm, "rssi_dbm")
        if message.fw is not None and "\x00" in message.fw:
            raise PayloadError(ReasonCode.BAD_SCHEMA, "fw contains a NUL character")


def build_batch(
    items: Iterable[Inbound], registry: Mapping[str, DeviceType], prefix: str = ""
) -> Batch:
    """Decode every inbound message with the gateway codec; bad ones become dead letters.

    Args:
        items: messages in the order received.
        registry: device id -> registered type.
        prefix: the topic namespace in use.

    Returns:
        The batch; every item is either in `rows` or in `dead`, never both, never lost.
    """
    batch = Batch()
    for item in items:
        try:
            message = decode(
                item.topic, item.payload, now_ms=item.received_ms, registry=registry, prefix=prefix
            )
            check_storable(message)
            batch.add(message, item.received_ms)
        except PayloadError as exc:
            logger.warning(
                "dead letter %s on %s (%d bytes): %s",
                exc.reason.value,
                item.topic[:200],
                len(item.payload),
                exc.detail,
            )
            logger.debug("dead-letter payload %r", item.payload[:300])
            batch.dead.append(_dead(item, exc.reason, exc.detail))
        except Exception as exc:  # STYLE.md "Errors" 2: a bug on one message never stops ingest.
            logger.exception("internal error on a message from %s", item.topic[:200])
            batch.dead.append(_dead(item, ReasonCode.INTERNAL_ERROR, repr(exc)[:500]))
    return batch


def _dead(item: Inbound, reason: ReasonCode, detail: str) -> DeadLetter:
    return DeadLetter(
        item.received_ms,
        item.topic.replace("\x00", ""),
        item.payload,
        reason,
        detail.replace("\x00", ""),
    )


def unknown_devices(
    items: Iterable[Inbound], registry: Mapping[str, DeviceType], prefix: str = ""
) -> set[str]:
    """Device ids on well-formed topics that the registry does not know (to trigger a reload)."""
    out: set[str] = set()
    for item in items:
        try:
            device_id = parse_device_topic(item.topic, prefix).device_id
        except PayloadError:
            continue
        if device_id not in registry:
            out.add(device_id)
    return out


MS_PER_WEEK = 7 * 24 * 3600 * 1000
# 1970-01-05 was the first Monday after the epoch; weeks start on Monday 00:00 UTC (ISO 8601).
_FIRST_MONDAY_MS = 4 * 24 * 3600 * 1000


def week_start_ms(ts_ms: int) -> int:
    """Start of the ISO week (Monday 00:00 UTC) holding `ts_ms`: the plain-mode partition bound."""
    return (ts_ms - _FIRST_MONDAY_MS) // MS_PER_WEEK * MS_PER_WEEK + _FIRST_MONDAY_MS


def row_time_ms(message: Message, received_ms: int) -> int:
    """The partition time of a row: the device ts, or the receive time for a Last Will."""
    return message.ts if message.ts is not None else received_ms
