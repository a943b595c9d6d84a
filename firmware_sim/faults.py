"""Deliberate contract faults: malformed payloads, duplicates and late replays (pure)."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from firmware_sim.scenario import FaultRates
from gateway import EVENTS_BY_TYPE, DeviceType, Event, Message, ReasonCode, encode_message
from gateway.messages import Status

# A ts far beyond any simulated clock: always more than 5 minutes ahead (future_ts).
FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01
MALFORMED = (
    ReasonCode.BAD_TOPIC,
    ReasonCode.TOO_LARGE,
    ReasonCode.BAD_JSON,
    ReasonCode.BAD_SCHEMA,
    ReasonCode.UNKNOWN_DEVICE,
    ReasonCode.TYPE_MISMATCH,
    ReasonCode.FUTURE_TS,
)
DUPLICATE = "duplicate"
LATE = "late"


@dataclass(frozen=True, slots=True)
class Wire:
    """One publish: topic, payload and delivery flags; `fault` names a deliberate fault."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    fault: str | None = None


def malformed(reason: ReasonCode, message: Message, prefix: str) -> Wire:
    """A publish that breaks the contract with exactly `reason` (registry-aware decode)."""
    topic, payload = encode_message(message, prefix)
    if reason is ReasonCode.BAD_TOPIC:
        return Wire(topic.rsplit("/", 1)[0] + "/debug", payload, 1, fault=reason)
    if reason is ReasonCode.TOO_LARGE:
        padded = payload[:-1] + b',"pad":"' + b"x" * 17_000 + b'"}'
        return Wire(topic, padded, 1, fault=reason)
    if reason is ReasonCode.BAD_JSON:
        return Wire(topic, payload[: max(1, len(payload) // 2)], 1, fault=reason)
    if reason is ReasonCode.BAD_SCHEMA:
        obj = json.loads(payload)
        obj.pop("ts", None)
        return Wire(topic, json.dumps(obj, separators=(",", ":")).encode(), 1, fault=reason)
    if reason is ReasonCode.UNKNOWN_DEVICE:
        ghost = replace(message, device_id=f"{message.device_id}-ghost"[:64])
        return Wire(*encode_message(ghost, prefix), 1, fault=reason)
    if reason is ReasonCode.TYPE_MISMATCH:
        other = DeviceType.SMOKE if message.type is not DeviceType.SMOKE else DeviceType.BUTTON
        seq, ts = (0, 0) if isinstance(message, Status) else (message.seq, message.ts)
        event = sorted(EVENTS_BY_TYPE[other])[0]
        fake = Event(device_id=message.device_id, type=other, seq=seq, ts=ts, event=event)
        return Wire(*encode_message(fake, prefix), 1, fault=reason)
    if isinstance(message, Status):
        raise ValueError("future_ts needs a telemetry or event message")
    return Wire(*encode_message(replace(message, ts=FAR_FUTURE_MS), prefix), 1, fault=reason)


class FaultInjector:
    """Adds faults around one device's messages, from the device's own fault generator."""

    def __init__(self, rates: FaultRates, rng: np.random.Generator, prefix: str) -> None:
        """Use `rates` per telemetry/event message."""
        self.rates, self.rng, self.prefix = rates, rng, prefix
        self.history: deque[Wire] = deque(maxlen=64)

    def around(self, message: Message, wire: Wire) -> list[Wire]:
        """The publishes for `message`: itself, plus any duplicate, late replay or bad one."""
        out = [wire]
        if isinstance(message, Status):
            return out
        r = self.rates
        if self.rng.random() < r.duplicate:
            out.append(replace(wire, fault=DUPLICATE))
        if self.rng.random() < r.late and len(self.history) >= 16:
            old = self.history[int(self.rng.integers(0, len(self.history) - 8))]
            out.append(replace(old, fault=LATE))
        if self.rng.random() < r.malformed:
            reason = MALFORMED[int(self.rng.integers(0, len(MALFORMED)))]
            out.append(malformed(reason, message, self.prefix))
        self.history.append(wire)
        return out
