"""Pure core of ingest: raw MQTT messages in, typed rows, dead letters and last-seen updates out."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import starmap
from math import hypot

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
from gateway.contract import TOPIC_ROOT

logger = logging.getLogger(__name__)

# Storage column limits: `real` is IEEE float4, `integer` is int32. A finite JSON number outside
# them cannot be stored, so it is rejected here instead of failing the whole batch in the database.
_FLOAT4_MAX = 3.4028234e38
_INT32_MAX = 2**31 - 1
MS_PER_DAY = 24 * 3600 * 1000
# A device ts more than this before its receive time is implausible for the time series: the
# shortest retention (cane_telemetry, 30 days, migration 002) would drop its chunk, and in plain
# mode each such week would get a partition of its own. Gateways replay buffers of at most a few
# days, so real late data stays well inside. Such rows go to `misdated_messages` (migration 007).
MAX_BACKDATE_MS = 30 * MS_PER_DAY


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
        retain: the broker sent it because of a subscription, from its retained store
            (MQTT 5 §3.3.1.3 with Retain As Published 0): a replay, not new traffic.
    """

    topic: str
    payload: bytes
    received_ms: int
    qos: int = 0
    mid: int = 0
    generation: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    """One accepted message as it is stored.

    Attributes:
        message: the decoded message.
        received_ms: platform clock at receipt, ms.
        time_ms: the stored `time` (the key and partition time): the device ts; for a Last
            Will, which has none, the receive time of the device's last real message before
            it (see `Batch.anchor_wills`), so every copy of one Will has one key.
        traffic_before_ms: for a Will, the newest receive time of real traffic from the same
            device earlier in this batch.
        peak_g: for a cane window, its largest sample magnitude in g (`window_peak_g`).
    """

    message: Message
    received_ms: int
    time_ms: int
    traffic_before_ms: int | None = None
    peak_g: float | None = None

    @property
    def is_will(self) -> bool:
        """A Last Will: an offline status without a device ts (contract §1 "Status")."""
        return isinstance(self.message, Status) and self.message.ts is None


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
    """What one batch says about a device's liveness and battery.

    `last_seen_ms` moves only on real traffic from the device: a Last Will is published by the
    broker, not the device, and a retained replay is not new (it is never merged at all).
    """

    device_id: str
    last_seen_ms: int | None = None
    last_ts: int | None = None
    online: bool | None = None
    status_ms: int | None = None
    heartbeat_s: int | None = None
    battery_pct: float | None = None
    battery_ts: int | None = None

    def merge(self, message: Message, received_ms: int) -> None:
        """Fold one accepted live message in (newest wins, by device time where there is one)."""
        ts = message.ts
        if ts is not None:
            self.last_seen_ms = max(self.last_seen_ms or received_ms, received_ms)
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
    """Everything one batch of inbound messages turns into.

    Attributes:
        rows: accepted messages per series.
        misdated: accepted messages whose device ts is implausibly old (`MAX_BACKDATE_MS`),
            stored outside the partitioned series.
        dead: rejected messages.
        last_seen: per device, what the live traffic of this batch says.
    """

    rows: dict[Kind, list[Row]] = field(default_factory=lambda: {kind: [] for kind in Kind})
    misdated: list[tuple[Kind, Row]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    last_seen: dict[str, LastSeen] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        """How many messages decoded into rows."""
        return sum(len(rows) for rows in self.rows.values()) + len(self.misdated)

    def add(
        self,
        message: Message,
        received_ms: int,
        *,
        replay: bool = False,
        max_backdate_ms: int = MAX_BACKDATE_MS,
        peak_g: float | None = None,
    ) -> None:
        """Add an accepted message to its series and, unless it is a replay, to last-seen.

        `peak_g`: a cane window's peak when already known (`check_storable` returns it);
        computed here otherwise."""
        kind = kind_of(message)
        seen = self.last_seen.get(message.device_id)
        if message.ts is None:
            before = seen.last_seen_ms if seen is not None else None
            row = Row(message, received_ms, received_ms, traffic_before_ms=before)
            self.rows[kind].append(row)
        elif message.ts < received_ms - max_backdate_ms:
            self.misdated.append((kind, Row(message, received_ms, message.ts)))
        elif isinstance(message, CaneTelemetry):
            if peak_g is None:
                peak_g = window_peak_g(message)
            self.rows[kind].append(Row(message, received_ms, message.ts, peak_g=peak_g))
        else:
            self.rows[kind].append(Row(message, received_ms, message.ts))
        if replay:
            return
        if seen is None:
            seen = self.last_seen[message.device_id] = LastSeen(message.device_id)
        seen.merge(message, received_ms)

    def will_devices(self) -> set[str]:
        """Devices with a Last Will in this batch (their anchors are looked up before writing)."""
        return {row.message.device_id for row in self.rows[Kind.STATUS] if row.is_will}

    def anchor_wills(self, stored_last_seen_ms: Mapping[str, int]) -> None:
        """Key each Will on the device's last real traffic before it.

        The broker replays a retained Will on every new subscription (MQTT 5 §3.3.1.3); keyed
        on its receive time, each copy would be a new row. The last real message before it is
        the same for every copy, so all copies of one offline transition share one key and the
        database stores it once. A device never heard from keeps the Will's receive time.

        Args:
            stored_last_seen_ms: device id -> stored receive time of its newest real message.
        """
        anchored = []
        for row in self.rows[Kind.STATUS]:
            if row.is_will:
                device_id = row.message.device_id
                known = [
                    t
                    for t in (row.traffic_before_ms, stored_last_seen_ms.get(device_id))
                    if t is not None
                ]
                if known:
                    row = Row(row.message, row.received_ms, max(known), row.traffic_before_ms)
            anchored.append(row)
        self.rows[Kind.STATUS] = anchored


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


def window_peak_g(window: CaneTelemetry) -> float:
    """The window's largest sample magnitude sqrt(x² + y² + z²), g (`hypot` per sample, in C)."""
    return max(starmap(hypot, window.accel_g))


def check_storable(message: Message) -> float | None:
    """Reject values the codec accepts but the typed columns cannot hold.

    Returns:
        For a cane window, its peak (`window_peak_g`, computed for the check); else None.

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
        # The window's peak magnitude is stored too (`ingest.db`), and bounds every
        # coordinate: one C pass over the samples (hypot per sample) checks both.
        peak = window_peak_g(message)
        if peak > _FLOAT4_MAX:
            raise PayloadError(ReasonCode.BAD_SCHEMA, "accel_g is beyond the storable range")
        return peak
    elif isinstance(message, Status):
        _check_float4(message.rssi_dbm, "rssi_dbm")
        if message.fw is not None and "\x00" in message.fw:
            raise PayloadError(ReasonCode.BAD_SCHEMA, "fw contains a NUL character")
    return None


def build_batch(
    items: Iterable[Inbound],
    registry: Mapping[str, DeviceType],
    prefix: str = "",
    *,
    max_backdate_ms: int = MAX_BACKDATE_MS,
) -> Batch:
    """Decode every inbound message with the gateway codec; bad ones become dead letters.

    Args:
        items: messages in the order received.
        registry: device id -> registered type.
        prefix: the topic namespace in use.
        max_backdate_ms: a device ts older than its receive time minus this is misdated.

    Returns:
        The batch; every item is either in `rows` or in `dead`, never both, never lost.
    """
    batch = Batch()
    for item in items:
        try:
            message = decode(
                item.topic, item.payload, now_ms=item.received_ms, registry=registry, prefix=prefix
            )
            peak_g = check_storable(message)
            batch.add(
                message,
                item.received_ms,
                replay=item.retain,
                max_backdate_ms=max_backdate_ms,
                peak_g=peak_g,
            )
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
    head = f"{prefix}{TOPIC_ROOT}/devices/"
    for item in items:
        # Fast path for the common case: a registered id (registered ids are valid ones).
        topic = item.topic
        if topic.startswith(head) and topic[len(head) :].partition("/")[0] in registry:
            continue
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
