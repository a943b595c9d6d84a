"""Typed device messages of contract §1 (frozen, slotted, immutable)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gateway.contract import Channel, DeviceType

Accel = tuple[float, float, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Measured:
    """Fields common to telemetry and events."""

    device_id: str
    type: DeviceType
    seq: int
    ts: int
    battery_pct: float | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        """The message identity `(device_id, ts, seq)` of contract §1."""
        return (self.device_id, self.ts, self.seq)


@dataclass(frozen=True, slots=True, kw_only=True)
class SmokeTelemetry(_Measured):
    """Smoke-sensor telemetry: obscuration in dB/m (EN 54-7) and temperature."""

    smoke_db_m: float
    temp_c: float
    channel: ClassVar[Channel] = Channel.TELEMETRY


@dataclass(frozen=True, slots=True, kw_only=True)
class BandTelemetry(_Measured):
    """Anti-wandering wristband fix."""

    lat: float
    lon: float
    hacc_m: float
    hr_bpm: int | None = None
    steps: int | None = None
    worn: bool | None = None
    channel: ClassVar[Channel] = Channel.TELEMETRY


@dataclass(frozen=True, slots=True, kw_only=True)
class CaneTelemetry(_Measured):
    """One accelerometer window of a smart cane, oldest sample first, last at `ts`."""

    rate_hz: int
    accel_g: tuple[Accel, ...]
    lat: float | None = None
    lon: float | None = None
    hacc_m: float | None = None
    hr_bpm: int | None = None
    channel: ClassVar[Channel] = Channel.TELEMETRY


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(_Measured):
    """A discrete device event (press, alarm, sos, ...)."""

    event: str
    channel: ClassVar[Channel] = Channel.EVENTS


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """Online/offline status, heartbeat, or Last Will (`online` false, no `ts`)."""

    device_id: str
    type: DeviceType
    online: bool
    ts: int | None = None
    heartbeat_s: int | None = None
    battery_pct: float | None = None
    rssi_dbm: float | None = None
    fw: str | None = None
    channel: ClassVar[Channel] = Channel.STATUS


Telemetry = SmokeTelemetry | BandTelemetry | CaneTelemetry
Message = SmokeTelemetry | BandTelemetry | CaneTelemetry | Event | Status
