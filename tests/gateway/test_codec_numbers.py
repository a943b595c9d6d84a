"""Numbers at the edges of the codec: long integers, NaN/Infinity, booleans, sample shapes.

Every expected verdict is what the standard-library parse (`json.loads`, integers of any length
stay integers) and contract §1 give; the details are the codec's own wording, so a dead-letter
row reads the same whichever JSON parser read the payload.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import CaneTelemetry, PayloadError, ReasonCode, SmokeTelemetry, decode
from gateway.codec import _accel, parse_json_object

NOW_MS = 1_764_340_000_000
I64 = 2**63 - 1
SMOKE = '{"v":1,"type":"smoke","seq":7,"ts":1764340000000,"smoke_db_m":0.01,"temp_c":%s}'
BAND = '{"v":1,"type":"band","seq":%s,"ts":1764340000000,"lat":%s,"lon":116.3,"hacc_m":8.0%s}'
CANE = '{"v":1,"type":"cane","seq":2,"ts":1764340000000,"rate_hz":%s,"accel_g":%s}'
STATUS = '{"v":%s,"type":"band","online":true,"ts":%s,"heartbeat_s":%s}'
LONG = str(10**25)
NEG19 = "-9223372036854775809"  # the shortest integer beyond 64 bits
HUGE = "9" * 400  # an integer no float holds
ENORMOUS = "9" * 5000  # beyond CPython's 4300-digit int conversion limit

HR_LONG = f"hr_bpm must be in 0..{I64}"

WINDOW_100 = ((0.1, 0.2, 1.0),) * 99 + ((0.0, 0.0, 1.0),)


def _topic(device_id: str, channel: str = "telemetry") -> str:
    return f"eldercare/v1/devices/{device_id}/{channel}"


def _verdict(device_id: str, raw: str, channel: str = "telemetry") -> Any:
    try:
        return decode(_topic(device_id, channel), raw.encode(), now_ms=NOW_MS)
    except PayloadError as exc:
        return exc.reason, exc.detail


def _schema(detail: str) -> tuple[ReasonCode, str]:
    return ReasonCode.BAD_SCHEMA, detail


INT_FIELDS = [
    ("seq-long", "band-0001", BAND % (LONG, "39.9", ""), f"seq must be in 0..{I64}"),
    ("seq-u64-max", "band-0001", BAND % (2**64 - 1, "39.9", ""), f"seq must be in 0..{I64}"),
    ("seq-2^64", "band-0001", BAND % (2**64, "39.9", ""), f"seq must be in 0..{I64}"),
    ("seq-neg19", "band-0001", BAND % (NEG19, "39.9", ""), f"seq must be in 0..{I64}"),
    ("seq-huge", "band-0001", BAND % (HUGE, "39.9", ""), f"seq must be in 0..{I64}"),
    ("seq-float-1e20", "band-0001", BAND % ("1e20", "39.9", ""), "seq must be an integer"),
    ("seq-float-2^64", "band-0001", BAND % ("1.8446744073709552e19", "39.9", ""), None),
    ("seq-float-neg", "band-0001", BAND % ("-9.3e18", "39.9", ""), "seq must be an integer"),
    ("seq-true", "band-0001", BAND % ("true", "39.9", ""), "seq must be an integer"),
    (
        "hr-long",
        "band-0001",
        BAND % (1, "39.9", f',"hr_bpm":{LONG}'),
        f"hr_bpm must be in 0..{I64}",
    ),
    ("steps-false", "band-0001", BAND % (1, "39.9", ',"steps":false'), "steps must be an integer"),
    ("rate-long", "cane-0001", CANE % (LONG, "[[0.1,0.2,1.0]]"), "rate_hz must be in 10..200"),
    ("rate-float-1e25", "cane-0001", CANE % ("1e25", "[[0.1,0.2,1.0]]"), None),
    ("v-long", "band-0001", STATUS % (LONG, 1, 300), "v must be 1"),
    ("status-ts-long", "band-0001", STATUS % (1, LONG, 300), f"ts must be in 0..{I64}"),
    ("heartbeat-long", "band-0001", STATUS % (1, 1, LONG), "heartbeat_s must be in 1..604800"),
    ("heartbeat-float", "band-0001", STATUS % (1, 1, "1e30"), "heartbeat_s must be an integer"),
]


@pytest.mark.parametrize(
    ("device_id", "raw", "detail"), [r[1:] for r in INT_FIELDS], ids=[r[0] for r in INT_FIELDS]
)
def test_integer_fields_read_long_integers_as_integers(
    device_id: str, raw: str, detail: str | None
) -> None:
    channel = "status" if '"online"' in raw else "telemetry"
    if detail is None:  # a float literal: the field named in the template's slot
        key = "seq" if raw.startswith('{"v":1,"type":"band"') else "rate_hz"
        detail = f"{key} must be an integer"
    assert _verdict(device_id, raw, channel) == _schema(detail)


def test_the_first_bad_field_is_reported_when_a_later_one_is_long() -> None:
    raw = BAND.replace('"ts":1764340000000', f'"ts":{LONG}') % ("1e20", "39.9", "")
    assert _verdict("band-0001", raw) == _schema("seq must be an integer")
    raw = BAND.replace('"ts":1764340000000', '"ts":"x"') % (LONG, "39.9", "")
    assert _verdict("band-0001", raw) == _schema(f"seq must be in 0..{I64}")


@pytest.mark.parametrize(
    ("temp", "expected"),
    [
        (LONG, 1e25),
        (str(2**64 + 2**11), float(2**64 + 2**11)),  # halfway between floats: ties to even
        ("-" + LONG, -1e25),
        (HUGE, _schema("temp_c is out of range")),
        ("1e400", _schema("temp_c must be in [-inf, inf]")),
        ("-1e400", _schema("temp_c must be in [-inf, inf]")),
        ("NaN", (ReasonCode.BAD_JSON, "NaN is not valid JSON")),
        ("Infinity", (ReasonCode.BAD_JSON, "Infinity is not valid JSON")),
        ("-Infinity", (ReasonCode.BAD_JSON, "-Infinity is not valid JSON")),
        ("true", _schema("temp_c must be a number")),
        ('"21.5"', _schema("temp_c must be a number")),
    ],
)
def test_number_fields(temp: str, expected: Any) -> None:
    got = _verdict("smk-0001", SMOKE % temp)
    if isinstance(expected, float):
        assert isinstance(got, SmokeTelemetry)
        assert type(got.temp_c) is float and got.temp_c == expected
    else:
        assert got == expected


def test_bounded_numbers_reject_long_integers_and_booleans() -> None:
    assert _verdict("band-0001", BAND % (1, LONG, "")) == _schema("lat must be in [-90.0, 90.0]")
    assert _verdict("band-0001", BAND % (1, "true", "")) == _schema("lat must be a number")


def test_long_integers_in_unknown_fields_are_ignored() -> None:
    ok = SMOKE.replace('"v":1', f'"v":1,"extra":[{LONG},{{"n":{NEG19}}}]') % "21.5"
    assert isinstance(_verdict("smk-0001", ok), SmokeTelemetry)
    # Valid JSON (RFC 8259 sets no length on numbers): a conforming payload is decoded in one
    # typed pass (gateway.typed_decode), which skips unknown fields whatever they hold.
    enormous = SMOKE.replace('"v":1', f'"v":1,"extra":{ENORMOUS}')
    assert isinstance(_verdict("smk-0001", enormous % "21.5"), SmokeTelemetry)
    # A payload that does not conform is read whole by the standard parser, whose
    # 4300-digit limit then names the number rather than the bad field.
    got = _verdict("smk-0001", enormous % '"hot"')
    assert got[0] is ReasonCode.BAD_JSON and "4300" in got[1]


WINDOWS = [
    ("empty", "[]", "accel_g must be a non-empty list of [x, y, z]"),
    ("not-a-list", '{"x":1}', "accel_g must be a non-empty list of [x, y, z]"),
    ("flat", "[0.1,0.2,1.0]", "accel_g[0] must be [x, y, z]"),
    ("ragged", "[[0.1,0.2,1.0],[0.1,0.2]]", "accel_g[1] must be [x, y, z]"),
    ("four", "[[0.1,0.2,1.0],[0.1,0.2,1.0,0.0]]", "accel_g[1] must be [x, y, z]"),
    ("string-of-3", '[[0.1,0.2,1.0],"abc"]', "accel_g[1] must be [x, y, z]"),
    ("object-of-3", '[{"a":1,"b":2,"c":3}]', "accel_g[0] must be [x, y, z]"),
    ("true", "[[0.1,0.2,1.0],[0.1,true,1.0]]", "accel_g[1] must be a number"),
    ("false-int", "[[0,false,1]]", "accel_g[0] must be a number"),
    ("null", "[[0.1,0.2,1.0],[0.1,0.2,null]]", "accel_g[1] must be a number"),
    ("string", '[[0.1,"0.2",1.0]]', "accel_g[0] must be a number"),
    ("nested", "[[0.1,[0.2],1.0]]", "accel_g[0] must be a number"),
    ("huge-int", f"[[0.1,0.2,1.0],[{HUGE},0.0,1.0]]", "accel_g[1] is out of range"),
    ("overflowed-float", "[[0.1,0.2,1.0],[1e400,0.0,1.0]]", "accel_g[1] must be in [-inf, inf]"),
]


@pytest.mark.parametrize(
    ("window", "detail"), [w[1:] for w in WINDOWS], ids=[w[0] for w in WINDOWS]
)
def test_bad_windows_name_the_first_bad_sample(window: str, detail: str) -> None:
    assert _verdict("cane-0001", CANE % (50, window)) == _schema(detail)


@pytest.mark.parametrize(
    ("window", "samples"),
    [
        ("[[0,0,1]]", ((0.0, 0.0, 1.0),)),
        (f"[[{LONG},-{LONG},{NEG19}]]", ((1e25, -1e25, -(2.0**63)),)),
        ("[[1e308,1e308,1e308],[0.5,-0.5,1.0]]", ((1e308,) * 3, (0.5, -0.5, 1.0))),
        (
            "[" + "[0.1,0.2,1.0]," * 99 + "[0.0,0.0,1.0]]",
            ((0.1, 0.2, 1.0),) * 99 + ((0.0, 0.0, 1.0),),
        ),
    ],
    ids=["ints", "long-ints", "sum-overflows", "100-samples"],
)
def test_good_windows_decode_to_float_triples(window: str, samples: tuple[Any, ...]) -> None:
    got = _verdict("cane-0001", CANE % (50, window))
    assert isinstance(got, CaneTelemetry)
    assert got.accel_g == samples
    assert all(type(s) is tuple and all(type(c) is float for c in s) for s in got.accel_g)


def _sample_by_sample(value: list[Any]) -> Any:
    """Contract §1 for accel_g, one coordinate at a time: the samples or (reason, detail)."""
    out = []
    for i, t in enumerate(value):
        if not isinstance(t, list) or len(t) != 3:
            return _schema(f"accel_g[{i}] must be [x, y, z]")
        for c in t:
            if isinstance(c, bool) or not isinstance(c, int | float):
                return _schema(f"accel_g[{i}] must be a number")
            try:
                f = float(c)
            except OverflowError:
                return _schema(f"accel_g[{i}] is out of range")
            if not math.isfinite(f):
                return _schema(f"accel_g[{i}] must be in [-inf, inf]")
        out.append(tuple(float(c) for c in t))
    return tuple(out)


_coord = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(2**70), 2**70)
    | st.just(10**400)
    | st.booleans()
    | st.none()
    | st.text(max_size=3)
    | st.lists(st.floats(), max_size=3)
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-16, 16), min_size=3, max_size=3)
        | st.lists(_coord, min_size=2, max_size=4)
        | st.text(min_size=3, max_size=3)
        | st.floats(),
        min_size=1,
        max_size=12,
    )
)
def test_window_check_equals_the_sample_by_sample_check(value: list[Any]) -> None:
    try:
        got: Any = _accel(value)
    except PayloadError as exc:
        got = exc.reason, exc.detail
    assert got == _sample_by_sample(value)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**200), 2**200), st.sampled_from(["seq", "ts", "hr_bpm", "steps"]))
def test_any_integer_in_an_integer_field_is_judged_as_an_integer(value: int, key: str) -> None:
    body = {"v": 1, "type": "band", "seq": 1, "ts": 1, "lat": 0.0, "lon": 0.0, "hacc_m": 1.0}
    body[key] = value
    got = _verdict("band-0001", json.dumps(body))
    if 0 <= value <= min(I64, NOW_MS + 300_000 if key == "ts" else I64):
        assert getattr(got, key) == value
    elif key == "ts" and value > NOW_MS + 300_000 and value <= I64:
        assert got[0] is ReasonCode.FUTURE_TS
    else:
        assert got == _schema(f"{key} must be in 0..{I64}")


@pytest.mark.parametrize("literal", [NEG19, str(2**64), LONG, "-" + LONG, HUGE])
def test_parse_json_object_keeps_long_integers_integers(literal: str) -> None:
    got = parse_json_object(f'{{"x":[{literal}],"y":1.5}}'.encode())
    assert got == {"x": [int(literal)], "y": 1.5}
    assert type(got["x"][0]) is int
