"""The codec's typed fast path (gateway.typed_decode) accepts only what the checked path
accepts, and decodes it to the same message.

A payload the fast path declines is decided by the checked path (`decode_body_checked`,
with the contract's reasons), so the property that matters is one-sided: whenever the fast
path returns a message, the checked path returns an equal one. Payloads are generated from
conforming ones with fields dropped, added, repeated or replaced by values at the edges.
(Unknown fields beyond the standard parser's limits are the one difference, on purpose: see
gateway.typed_decode and tests/gateway/test_codec_numbers.py.)
"""

from __future__ import annotations

import json
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import PayloadError, ReasonCode, Status, decode
from gateway.codec import decode_body_checked
from gateway.contract import EVENTS_BY_TYPE, Channel, DeviceType
from gateway.typed_decode import EVENT_STRUCTS, decode_body

TS = 1_764_340_000_000
WINDOW = [[0.012, -0.034, 0.981], [0.2, 0.1, 1.05], [-1.5, 2.0, 0.5]]
CONFORMING: list[tuple[Channel, dict[str, Any]]] = [
    (
        Channel.TELEMETRY,
        {
            "v": 1,
            "type": "smoke",
            "seq": 7,
            "ts": TS,
            "smoke_db_m": 0.01,
            "temp_c": 21.5,
            "battery_pct": 88.0,
        },
    ),
    (
        Channel.TELEMETRY,
        {
            "v": 1,
            "type": "band",
            "seq": 8,
            "ts": TS,
            "lat": 39.91,
            "lon": 116.37,
            "hacc_m": 8.0,
            "hr_bpm": 72,
            "steps": 1200,
            "worn": True,
        },
    ),
    (
        Channel.TELEMETRY,
        {
            "v": 1,
            "type": "cane",
            "seq": 9,
            "ts": TS,
            "rate_hz": 50,
            "accel_g": WINDOW,
            "lat": 39.9,
            "lon": 116.3,
            "hacc_m": 5.0,
            "hr_bpm": 80,
        },
    ),
    (Channel.EVENTS, {"v": 1, "type": "button", "seq": 1, "ts": TS, "event": "press"}),
    (Channel.EVENTS, {"v": 1, "type": "smoke", "seq": 2, "ts": TS, "event": "alarm"}),
    (Channel.EVENTS, {"v": 1, "type": "band", "seq": 3, "ts": TS, "event": "sos"}),
    (Channel.EVENTS, {"v": 1, "type": "cane", "seq": 4, "ts": TS, "event": "fall_detected"}),
    (
        Channel.STATUS,
        {
            "v": 1,
            "type": "band",
            "online": True,
            "ts": TS,
            "heartbeat_s": 300,
            "battery_pct": 50,
            "rssi_dbm": -70,
            "fw": "1.2.3",
        },
    ),
    (Channel.STATUS, {"v": 1, "type": "button", "online": False}),
]
KEYS = sorted({k for _, obj in CONFORMING for k in obj} | {"extra"})
EDGES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    10,
    200,
    201,
    0.0,
    -0.0,
    1.5,
    90.0,
    90.5,
    -180.0,
    180.0001,
    100,
    100.0,
    100.5,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    1e20,
    1e308,
    5e-324,
    "1",
    "",
    "band",
    "cane",
    "smoke",
    "button",
    "sos",
    "press",
    "alarm",
    "fall_detected",
    [],
    {},
    [[0.1, 0.2]],
    [[0.1, 0.2, 0.3, 0.4]],
    [[1, 2, 3]],
    [[True, 0.0, 1.0]],
    [[0.1, None, 0.2]],
    [0.1, 0.2, 0.3],
    [[10**30, 0.0, 1.0]],
    WINDOW,
]
RAW_EDGES = ["NaN", "Infinity", "-Infinity", "1e400", "9" * 400, "1.0", '"\\ud800"', "-0"]


@st.composite
def payloads(draw: st.DrawFn) -> tuple[Channel, bytes]:
    channel, base = draw(st.sampled_from(CONFORMING))
    obj = dict(base)
    raw: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(KEYS))
        action = draw(st.sampled_from(["set", "drop", "raw"]))
        if action == "drop":
            obj.pop(key, None)
        elif action == "set":
            obj[key] = draw(st.sampled_from(EDGES))
        else:
            obj.pop(key, None)
            raw.append((key, draw(st.sampled_from(RAW_EDGES))))
    text = json.dumps(obj, separators=(",", ":"))
    for key, literal in raw:
        text = text[:-1] + ("," if len(text) > 2 else "") + f'"{key}":{literal}' + "}"
    if draw(st.booleans()):  # a key repeated: the last one counts for every JSON parser here
        key = draw(st.sampled_from(KEYS))
        value = json.dumps(draw(st.sampled_from(EDGES)))
        text = "{" + f'"{key}":{value},' + text[1:] if len(text) > 2 else text
    return channel, text.encode()


def _checked(channel: Channel, payload: bytes) -> Any:
    try:
        return decode_body_checked(payload.decode(), "dev-0001", channel)
    except PayloadError as exc:
        return exc.reason


@pytest.mark.parametrize(("channel", "obj"), CONFORMING, ids=lambda v: str(v)[:24])
def test_conforming_payloads_take_the_fast_path_to_the_same_message(
    channel: Channel, obj: dict[str, Any]
) -> None:
    payload = json.dumps(obj).encode()
    fast = decode_body(payload, "dev-0001", channel)
    assert fast is not None
    assert fast == _checked(channel, payload)


@settings(max_examples=3000, deadline=None)
@given(payloads())
def test_whatever_the_fast_path_accepts_the_checked_path_accepts_equal(
    case: tuple[Channel, bytes],
) -> None:
    channel, payload = case
    fast = decode_body(payload, "dev-0001", channel)
    if fast is not None:
        assert fast == _checked(channel, payload), payload


def test_event_names_are_the_contracts() -> None:
    for struct, dtype in EVENT_STRUCTS.items():
        hints = typing.get_type_hints(struct, include_extras=True)
        assert frozenset(typing.get_args(hints["event"])) == EVENTS_BY_TYPE[dtype]
        assert struct.__struct_config__.tag == dtype.value
    assert set(EVENT_STRUCTS.values()) == set(DeviceType)


def test_a_button_sends_no_telemetry_and_a_tag_given_twice_is_left_to_the_checked_path() -> None:
    button = b'{"v":1,"type":"button","seq":1,"ts":1764340000000}'
    assert decode_body(button, "btn-0001", Channel.TELEMETRY) is None
    twice = b'{"type":"band","v":1,"seq":1,"ts":1,"event":"sos","type":"cane"}'
    assert decode_body(twice, "x", Channel.EVENTS) is None
    assert isinstance(msgspec.json.decode(twice), dict)


@pytest.mark.parametrize("depth", [10, 990, 1023, 1030, 5000])
def test_deep_nesting_in_an_unknown_field_gets_a_verdict_never_an_exception(depth: int) -> None:
    payload = ('{"v":1,"type":"band","online":true,"x":%s}' % ("[" * depth + "]" * depth)).encode()
    try:
        got = decode("eldercare/v1/devices/band-0001/status", payload, now_ms=TS)
    except PayloadError as exc:
        assert exc.reason is ReasonCode.BAD_JSON
    else:
        assert isinstance(got, Status) and got.online
