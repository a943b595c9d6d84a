"""Typed decoding of well-formed device payloads by msgspec: the codec's fast path.

`decode_body` returns the message a payload holds when it conforms to contract §1 as
msgspec's typed decoder reads it (one pass in C, bounds included), or None for anything
else. It never rejects: `gateway.codec` decides every payload this declines, with the
contract's reason code. So only what this accepts must agree with the codec, field for field
(tests/gateway/test_typed_decode.py checks it on generated payloads); a payload it declines
costs one failed pass before the codec's own.

One difference, on purpose: fields the contract does not define are skipped whatever valid
JSON they hold (RFC 8259 sets no limit on numbers or nesting), where the codec's standard
parser gives up on an integer of more than 4,300 digits or nesting about 1,000 deep. So a
payload whose defined fields conform is accepted even with such an unknown field; the codec
still rejects it (`bad_json`) when a defined field is wrong as well.

The bounds are the codec's (`gateway.codec`): integers 0..2**63-1, heartbeat 1 s..7 days,
battery 0..100 %, latitude -90..90, longitude -180..180, accuracy > 0 m, cane rate
10..200 Hz.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from gateway.contract import Channel, DeviceType
from gateway.messages import (
    BandTelemetry,
    CaneTelemetry,
    Event,
    Message,
    SmokeTelemetry,
    Status,
)

_UInt = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_Battery = Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]
_Lat = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
_Lon = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
_Accuracy = Annotated[float, msgspec.Meta(gt=0.0)]
_Triple = tuple[float, float, float]


class _Measured(msgspec.Struct, tag_field="type", kw_only=True, gc=False):
    v: Literal[1]
    seq: _UInt
    ts: _UInt
    battery_pct: _Battery | None = None


class _Smoke(_Measured, tag="smoke", gc=False):
    smoke_db_m: Annotated[float, msgspec.Meta(ge=0.0)]
    temp_c: float


class _Band(_Measured, tag="band", gc=False):
    lat: _Lat
    lon: _Lon
    hacc_m: _Accuracy
    hr_bpm: _UInt | None = None
    steps: _UInt | None = None
    worn: bool | None = None


class _Cane(_Measured, tag="cane", gc=False):
    rate_hz: Annotated[int, msgspec.Meta(ge=10, le=200)]
    accel_g: Annotated[tuple[_Triple, ...], msgspec.Meta(min_length=1)]
    lat: _Lat | None = None
    lon: _Lon | None = None
    hacc_m: _Accuracy | None = None
    hr_bpm: _UInt | None = None


# EVENTS_BY_TYPE of gateway.contract, spelled out for the type checker (a test compares them).
class _ButtonEvent(_Measured, tag="button", gc=False):
    event: Literal["press", "long_press", "cancel", "low_battery"]


class _SmokeEvent(_Measured, tag="smoke", gc=False):
    event: Literal["alarm", "clear", "test", "hush", "fault", "low_battery"]


class _BandEvent(_Measured, tag="band", gc=False):
    event: Literal["sos", "removed", "worn", "low_battery"]


class _CaneEvent(_Measured, tag="cane", gc=False):
    event: Literal["sos", "fall_detected", "low_battery"]


class _Status(msgspec.Struct, gc=False):
    v: Literal[1]
    type: Literal["button", "smoke", "band", "cane"]
    online: bool
    ts: _UInt | None = None
    heartbeat_s: Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 3600)] | None = None
    battery_pct: _Battery | None = None
    rssi_dbm: float | None = None
    fw: str | None = None


_TELEMETRY = msgspec.json.Decoder(_Smoke | _Band | _Cane)
_EVENTS = msgspec.json.Decoder(_ButtonEvent | _SmokeEvent | _BandEvent | _CaneEvent)
_STATUS = msgspec.json.Decoder(_Status)
_TYPES = {t.value: t for t in DeviceType}
EVENT_STRUCTS: dict[type[msgspec.Struct], DeviceType] = {
    _ButtonEvent: DeviceType.BUTTON,
    _SmokeEvent: DeviceType.SMOKE,
    _BandEvent: DeviceType.BAND,
    _CaneEvent: DeviceType.CANE,
}


def decode_body(payload: bytes, device_id: str, channel: Channel) -> Message | None:
    """The message `payload` holds on `channel` of `device_id`, or None to leave it to the codec.

    `payload` must already be checked for size and UTF-8 (`gateway.codec`). Registry and
    clock rules are the caller's.
    """
    try:
        if channel is Channel.TELEMETRY:
            return _telemetry(_TELEMETRY.decode(payload), device_id)
        if channel is Channel.EVENTS:
            e = _EVENTS.decode(payload)
            return Event(
                device_id=device_id,
                type=EVENT_STRUCTS[type(e)],
                seq=e.seq,
                ts=e.ts,
                battery_pct=e.battery_pct,
                event=e.event,
            )
        s = _STATUS.decode(payload)
    except (msgspec.MsgspecError, RecursionError):  # msgspec's depth limit: a RecursionError
        return None
    return Status(
        device_id=device_id,
        type=_TYPES[s.type],
        online=s.online,
        ts=s.ts,
        heartbeat_s=s.heartbeat_s,
        battery_pct=s.battery_pct,
        rssi_dbm=s.rssi_dbm,
        fw=s.fw,
    )


def _telemetry(w: _Smoke | _Band | _Cane, device_id: str) -> Message | None:
    if isinstance(w, _Band):
        return BandTelemetry(
            device_id=device_id,
            type=DeviceType.BAND,
            seq=w.seq,
            ts=w.ts,
            battery_pct=w.battery_pct,
            lat=w.lat,
            lon=w.lon,
            hacc_m=w.hacc_m,
            hr_bpm=w.hr_bpm,
            steps=w.steps,
            worn=w.worn,
        )
    if isinstance(w, _Cane):
        if (w.lat is None) != (w.lon is None):
            return None
        return CaneTelemetry(
            device_id=device_id,
            type=DeviceType.CANE,
            seq=w.seq,
            ts=w.ts,
            battery_pct=w.battery_pct,
            rate_hz=w.rate_hz,
            accel_g=w.accel_g,
            lat=w.lat,
            lon=w.lon,
            hacc_m=w.hacc_m,
            hr_bpm=w.hr_bpm,
        )
    return SmokeTelemetry(
        device_id=device_id,
        type=DeviceType.SMOKE,
        seq=w.seq,
        ts=w.ts,
        battery_pct=w.battery_pct,
        smoke_db_m=w.smoke_db_m,
        temp_c=w.temp_c,
    )
