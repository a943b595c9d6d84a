"""Pure codec of contract §1: (topic, bytes) in, a typed message or one PayloadError out."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from itertools import chain
from typing import Any

import orjson

from gateway.contract import (
    CONTRACT_VERSION,
    EVENTS_BY_TYPE,
    MAX_FUTURE_MS,
    MAX_PAYLOAD_BYTES,
    Channel,
    DeviceType,
    ReasonCode,
)
from gateway.errors import PayloadError
from gateway.messages import (
    Accel,
    BandTelemetry,
    CaneTelemetry,
    Event,
    Message,
    SmokeTelemetry,
    Status,
)
from gateway.topics import device_topic, parse_device_topic
from gateway.typed_decode import decode_body

_INT64_MAX = 2**63 - 1
# orjson reads an integer literal outside [-2**63, 2**64 - 1] as the float nearest to it
# (correctly rounded, as float(int) does; one too large for a float is refused as infinity),
# where the standard parser keeps an int. Such a float is <= -2**63 or >= 2**64; decode() reads
# the payload again with the standard parser only when an integer field holds one (_LongInt).
# parse_json_object() sends any run of 19 digits (the shortest such literal,
# -9223372036854775809) to the standard parser instead.
_INT_FLOAT_LO, _INT_FLOAT_HI = -(2.0**63), 2.0**64
_LONG_DIGITS = re.compile(r"\d{19}")
Registry = Mapping[str, DeviceType] | Callable[[str], DeviceType | None]


def _bad(detail: str) -> PayloadError:
    return PayloadError(ReasonCode.BAD_SCHEMA, detail)


def _reject_constant(name: str) -> Any:
    raise PayloadError(ReasonCode.BAD_JSON, f"{name} is not valid JSON")


class _LongInt(Exception):
    """An integer field holds a float orjson may have made of a literal beyond 64 bits."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _text(payload: bytes) -> str:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(ReasonCode.TOO_LARGE, f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(ReasonCode.BAD_JSON, f"not UTF-8 at byte {exc.start}") from exc


def _object(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _bad(f"payload is a JSON {type(obj).__name__}, not an object")
    return obj


def _fast_loads(text: str) -> Any:
    # orjson is several times faster; whatever it refuses (NaN, lone surrogates, deep
    # nesting, numbers too large for a float) goes through the standard parser, whose
    # verdict and reason codes are the contract's. Long integers: see _INT_FLOAT_LO.
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _stdlib_loads(text)


def parse_json_object(payload: bytes) -> dict[str, Any]:
    """Parse a contract payload: at most 16 KiB of UTF-8 JSON holding one object.

    Returns exactly what the standard library's `json.loads` returns (integers of any
    length stay integers).

    Raises:
        PayloadError: `too_large`, `bad_json`, or `bad_schema` when it is not an object.
    """
    text = _text(payload)
    if _LONG_DIGITS.search(text):
        return _object(_stdlib_loads(text))
    return _object(_fast_loads(text))


def _stdlib_loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(ReasonCode.BAD_JSON, str(exc)[:200]) from exc


def _int(obj: Mapping[str, Any], key: str, *, lo: int = 0, hi: int = _INT64_MAX) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        if type(value) is float and not _INT_FLOAT_LO < value < _INT_FLOAT_HI:
            raise _LongInt(key)
        raise _bad(f"{key} must be an integer")
    if not lo <= value <= hi:
        raise _bad(f"{key} must be in {lo}..{hi}")
    return value


def _opt_int(obj: Mapping[str, Any], key: str, *, lo: int = 0, hi: int = _INT64_MAX) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, lo=lo, hi=hi)


def _num(
    obj: Mapping[str, Any],
    key: str,
    *,
    lo: float = -math.inf,
    hi: float = math.inf,
    lo_open: bool = False,
) -> float:
    return _number(obj[key], key, lo=lo, hi=hi, lo_open=lo_open)


def _number(
    value: Any, key: str, *, lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{key} must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise _bad(f"{key} is out of range") from None
    if not math.isfinite(number) or number > hi or number < lo or (lo_open and number == lo):
        raise _bad(f"{key} must be in {'(' if lo_open else '['}{lo}, {hi}]")
    return number


def _opt_num(obj: Mapping[str, Any], key: str, **bounds: Any) -> float | None:
    return None if obj.get(key) is None else _num(obj, key, **bounds)


def _require(obj: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        raise _bad(f"missing required field(s): {', '.join(missing)}")


def _lookup(registry: Registry, device_id: str) -> DeviceType | None:
    if callable(registry):
        return registry(device_id)
    return registry.get(device_id)


def _accel(value: Any) -> tuple[Accel, ...]:
    if not isinstance(value, list) or not value:
        raise _bad("accel_g must be a non-empty list of [x, y, z]")
    # The common window: lists of three JSON floats (finite, since JSON has no NaN or
    # infinity and a finite sum rules out overflowed literals), checked by C loops (map,
    # count, sum). Anything else is checked sample by sample below, with the reason of the
    # first bad one.
    n = len(value)
    if list(map(type, value)).count(list) == n and list(map(len, value)).count(3) == n:
        flat = list(chain.from_iterable(value))
        if list(map(type, flat)).count(float) == 3 * n and math.isfinite(sum(flat)):
            return tuple(map(tuple, value))
    samples: list[Accel] = []
    for i, triple in enumerate(value):
        if not isinstance(triple, list) or len(triple) != 3:
            raise _bad(f"accel_g[{i}] must be [x, y, z]")
        x, y, z = (_number(c, f"accel_g[{i}]") for c in triple)
        samples.append((x, y, z))
    return tuple(samples)


def _telemetry(obj: dict[str, Any], common: dict[str, Any]) -> Message:
    dtype: DeviceType = common["type"]
    if dtype is DeviceType.SMOKE:
        _require(obj, ("smoke_db_m", "temp_c"))
        return SmokeTelemetry(
            **common, smoke_db_m=_num(obj, "smoke_db_m", lo=0.0), temp_c=_num(obj, "temp_c")
        )
    if dtype is DeviceType.BAND:
        _require(obj, ("lat", "lon", "hacc_m"))
        worn = obj.get("worn")
        if worn is not None and not isinstance(worn, bool):
            raise _bad("worn must be a boolean")
        return BandTelemetry(
            **common,
            lat=_num(obj, "lat", lo=-90.0, hi=90.0),
            lon=_num(obj, "lon", lo=-180.0, hi=180.0),
            hacc_m=_num(obj, "hacc_m", lo=0.0, lo_open=True),
            hr_bpm=_opt_int(obj, "hr_bpm"),
            steps=_opt_int(obj, "steps"),
            worn=worn,
        )
    if dtype is DeviceType.CANE:
        _require(obj, ("rate_hz", "accel_g"))
        lat, lon = obj.get("lat"), obj.get("lon")
        if (lat is None) != (lon is None):
            raise _bad("lat and lon come together")
        return CaneTelemetry(
            **common,
            rate_hz=_int(obj, "rate_hz", lo=10, hi=200),
            accel_g=_accel(obj["accel_g"]),
            lat=_opt_num(obj, "lat", lo=-90.0, hi=90.0),
            lon=_opt_num(obj, "lon", lo=-180.0, hi=180.0),
            hacc_m=_opt_num(obj, "hacc_m", lo=0.0, lo_open=True),
            hr_bpm=_opt_int(obj, "hr_bpm"),
        )
    raise _bad("button devices send no telemetry")


def _status(obj: dict[str, Any], device_id: str, dtype: DeviceType) -> Status:
    _require(obj, ("online",))
    online = obj["online"]
    if not isinstance(online, bool):
        raise _bad("online must be a boolean")
    fw = obj.get("fw")
    if fw is not None and not isinstance(fw, str):
        raise _bad("fw must be a string")
    return Status(
        device_id=device_id,
        type=dtype,
        online=online,
        ts=_opt_int(obj, "ts"),
        heartbeat_s=_opt_int(obj, "heartbeat_s", lo=1, hi=7 * 24 * 3600),
        battery_pct=_opt_num(obj, "battery_pct", lo=0.0, hi=100.0),
        rssi_dbm=_opt_num(obj, "rssi_dbm"),
        fw=fw,
    )


def _body(obj: dict[str, Any], device_id: str, channel: Channel) -> Message:
    _require(obj, ("v", "type"))
    version = obj["v"]
    if isinstance(version, bool) or not isinstance(version, int) or version != CONTRACT_VERSION:
        raise _bad(f"v must be {CONTRACT_VERSION}")
    try:
        dtype = DeviceType(obj["type"])
    except (ValueError, TypeError):
        raise _bad("type must be button, smoke, band or cane") from None
    if channel is Channel.STATUS:
        return _status(obj, device_id, dtype)
    _require(obj, ("seq", "ts"))
    common: dict[str, Any] = {
        "device_id": device_id,
        "type": dtype,
        "seq": _int(obj, "seq"),
        "ts": _int(obj, "ts"),
        "battery_pct": _opt_num(obj, "battery_pct", lo=0.0, hi=100.0),
    }
    if channel is Channel.TELEMETRY:
        return _telemetry(obj, common)
    _require(obj, ("event",))
    name = obj["event"]
    if not isinstance(name, str) or name not in EVENTS_BY_TYPE[dtype]:
        raise _bad(f"event must be one of {sorted(EVENTS_BY_TYPE[dtype])}")
    return Event(**common, event=name)


def decode_body_checked(text: str, device_id: str, channel: Channel) -> Message:
    """The message `text` holds on `channel`, checked field by field (reasons included).

    Raises:
        PayloadError: `bad_json` or `bad_schema`, with the first problem found.
    """
    try:
        return _body(_object(_fast_loads(text)), device_id, channel)
    except _LongInt:
        # Rare: read it as the standard parser does, where such a literal is an int.
        try:
            return _body(_object(_stdlib_loads(text)), device_id, channel)
        except _LongInt as exc:  # a float literal after all
            raise _bad(f"{exc.key} must be an integer") from None


def decode(
    topic: str,
    payload: bytes,
    *,
    now_ms: int,
    registry: Registry | None = None,
    prefix: str = "",
) -> Message:
    """Decode one device message as contract §1 reads it.

    Args:
        topic: the MQTT topic it arrived on.
        payload: its raw bytes.
        now_ms: the platform clock, for the `future_ts` rule.
        registry: device id -> registered type; when given, `unknown_device` and
            `type_mismatch` are checked.
        prefix: the topic namespace in use (empty in production).

    Returns:
        A SmokeTelemetry, BandTelemetry, CaneTelemetry, Event or Status.

    Raises:
        PayloadError: with the contract's reason code; no other exception escapes.
    """
    where = parse_device_topic(topic, prefix)
    text = _text(payload)
    # Conforming payloads in one typed pass (gateway.typed_decode); the rest, and every
    # reason for a rejection, below.
    message = decode_body(payload, where.device_id, where.channel)
    if message is None:
        message = decode_body_checked(text, where.device_id, where.channel)
    if registry is not None:
        registered = _lookup(registry, where.device_id)
        if registered is None:
            raise PayloadError(ReasonCode.UNKNOWN_DEVICE, f"{where.device_id} is not registered")
        if registered != message.type:
            raise PayloadError(
                ReasonCode.TYPE_MISMATCH, f"sent {message.type}, registered as {registered}"
            )
    ts = message.ts
    if ts is not None and ts > now_ms + MAX_FUTURE_MS:
        raise PayloadError(ReasonCode.FUTURE_TS, f"ts is {ts - now_ms} ms ahead of the platform")
    return message


_SKIP = frozenset({"device_id"})


def to_wire(message: Message) -> dict[str, Any]:
    """Return the JSON object a conforming device sends for `message` (None fields left out)."""
    out: dict[str, Any] = {"v": CONTRACT_VERSION}
    for spec in fields(message):
        name = spec.name
        if name in _SKIP:
            continue
        value = getattr(message, name)
        if value is None:
            continue
        if name == "accel_g":
            value = [list(sample) for sample in value]
        elif isinstance(value, DeviceType):
            value = value.value
        out[name] = value
    return out


def encode(message: Message) -> bytes:
    """Return the exact payload bytes a conforming device sends for `message`."""
    return json.dumps(to_wire(message), separators=(",", ":"), allow_nan=False).encode()


def encode_message(message: Message, prefix: str = "") -> tuple[str, bytes]:
    """Return `(topic, payload)` for publishing `message`."""
    return device_topic(message.device_id, message.channel, prefix), encode(message)
