"""The wire-contract codec: table tests per reason code and hypothesis properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import (
    MAX_PAYLOAD_BYTES,
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
    encode,
    encode_message,
)

NOW_MS = 1_764_340_000_000
REGISTRY = {
    "btn-000001": DeviceType.BUTTON,
    "smk-000001": DeviceType.SMOKE,
    "band-000001": DeviceType.BAND,
    "cane-000001": DeviceType.CANE,
}


def topic(device_id: str, channel: str) -> str:
    return f"eldercare/v1/devices/{device_id}/{channel}"


def payload(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


SMOKE = {"v": 1, "type": "smoke", "seq": 7, "ts": NOW_MS, "smoke_db_m": 0.01, "temp_c": 21.5}
BAND = {"v": 1, "type": "band", "seq": 1, "ts": NOW_MS, "lat": 39.93, "lon": 116.37, "hacc_m": 12.0}
CANE = {"v": 1, "type": "cane", "seq": 2, "ts": NOW_MS, "rate_hz": 50, "accel_g": [[0, 0, 1]]}
PRESS = {"v": 1, "type": "button", "seq": 3, "ts": NOW_MS, "event": "press"}


@pytest.mark.parametrize(
    ("device_id", "channel", "body", "expected"),
    [
        ("smk-000001", "telemetry", SMOKE, SmokeTelemetry),
        ("band-000001", "telemetry", BAND, BandTelemetry),
        ("cane-000001", "telemetry", CANE, CaneTelemetry),
        ("btn-000001", "events", PRESS, Event),
        ("btn-000001", "status", {"v": 1, "type": "button", "online": False}, Status),
        (
            "band-000001",
            "status",
            {
                "v": 1,
                "type": "band",
                "online": True,
                "ts": NOW_MS,
                "heartbeat_s": 300,
                "battery_pct": 80,
                "rssi_dbm": -71,
                "fw": "1.4.2",
            },
            Status,
        ),
        ("smk-000001", "telemetry", {**SMOKE, "extra": {"ignored": True}}, SmokeTelemetry),
    ],
    ids=["smoke", "band", "cane", "press", "will", "status", "unknown-extra-field"],
)
def test_valid_messages_decode(
    device_id: str, channel: str, body: dict[str, Any], expected: type
) -> None:
    msg = decode(topic(device_id, channel), payload(**body), now_ms=NOW_MS, registry=REGISTRY)
    assert isinstance(msg, expected)
    assert msg.device_id == device_id


def test_decoded_fields_are_typed() -> None:
    msg = decode(topic("cane-000001", "telemetry"), payload(**CANE), now_ms=NOW_MS)
    assert isinstance(msg, CaneTelemetry)
    assert msg.accel_g == ((0.0, 0.0, 1.0),)
    assert msg.key == ("cane-000001", NOW_MS, 2)


REJECTIONS = [
    ("bad_topic", "eldercare/v1/devices/btn-000001", payload(**PRESS), ReasonCode.BAD_TOPIC),
    ("bad_topic-id", topic("BTN_1", "events"), payload(**PRESS), ReasonCode.BAD_TOPIC),
    ("bad_topic-channel", topic("btn-000001", "logs"), payload(**PRESS), ReasonCode.BAD_TOPIC),
    (
        "bad_topic-version",
        "eldercare/v2/devices/btn-000001/events",
        payload(**PRESS),
        ReasonCode.BAD_TOPIC,
    ),
    (
        "too_large",
        topic("smk-000001", "telemetry"),
        payload(**SMOKE, pad="x" * MAX_PAYLOAD_BYTES),
        ReasonCode.TOO_LARGE,
    ),
    ("bad_json", topic("smk-000001", "telemetry"), b'{"v":1,', ReasonCode.BAD_JSON),
    ("bad_json-utf8", topic("smk-000001", "telemetry"), b'{"v":"\xff"}', ReasonCode.BAD_JSON),
    (
        "bad_json-nan",
        topic("smk-000001", "telemetry"),
        payload(**SMOKE).replace(b"0.01", b"NaN"),
        ReasonCode.BAD_JSON,
    ),
    ("bad_schema-array", topic("smk-000001", "telemetry"), b"[1,2]", ReasonCode.BAD_SCHEMA),
    (
        "bad_schema-missing",
        topic("smk-000001", "telemetry"),
        payload(**{k: v for k, v in SMOKE.items() if k != "temp_c"}),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-bool-seq",
        topic("smk-000001", "telemetry"),
        payload(**{**SMOKE, "seq": True}),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-float-ts",
        topic("smk-000001", "telemetry"),
        payload(**{**SMOKE, "ts": 1.5}),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-negative-seq",
        topic("smk-000001", "telemetry"),
        payload(**{**SMOKE, "seq": -1}),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-version",
        topic("smk-000001", "telemetry"),
        payload(**{**SMOKE, "v": 2}),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-event-name",
        topic("btn-000001", "events"),
        payload(**{**PRESS, "event": "alarm"}),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-button-telemetry",
        topic("btn-000001", "telemetry"),
        payload(v=1, type="button", seq=1, ts=NOW_MS),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-hacc-zero",
        topic("band-000001", "telemetry"),
        payload(**{**BAND, "hacc_m": 0}),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-battery",
        topic("band-000001", "telemetry"),
        payload(**{**BAND, "battery_pct": 101}),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-rate",
        topic("cane-000001", "telemetry"),
        payload(**{**CANE, "rate_hz": 5}),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-accel",
        topic("cane-000001", "telemetry"),
        payload(**{**CANE, "accel_g": [[0, 1]]}),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-smoke-negative",
        topic("smk-000001", "telemetry"),
        payload(**{**SMOKE, "smoke_db_m": -0.1}),
        ReasonCode.BAD_SCHEMA,
    ),
    (
        "bad_schema-online",
        topic("btn-000001", "status"),
        payload(v=1, type="button", online=1),
        ReasonCode.BAD_SCHEMA,
    ),
    ("unknown_device", topic("btn-999999", "events"), payload(**PRESS), ReasonCode.UNKNOWN_DEVICE),
    ("type_mismatch", topic("band-000001", "events"), payload(**PRESS), ReasonCode.TYPE_MISMATCH),
    (
        "future_ts",
        topic("btn-000001", "events"),
        payload(**{**PRESS, "ts": NOW_MS + 300_001}),
        ReasonCode.FUTURE_TS,
    ),
]


@pytest.mark.parametrize(
    ("topic_name", "raw", "reason"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_rejections_carry_the_contract_reason(
    topic_name: str, raw: bytes, reason: ReasonCode
) -> None:
    with pytest.raises(PayloadError) as info:
        decode(topic_name, raw, now_ms=NOW_MS, registry=REGISTRY)
    assert info.value.reason is reason


def test_ts_at_the_future_limit_is_accepted() -> None:
    msg = decode(
        topic("btn-000001", "events"), payload(**{**PRESS, "ts": NOW_MS + 300_000}), now_ms=NOW_MS
    )
    assert msg.ts == NOW_MS + 300_000


def test_registry_may_be_a_function() -> None:
    with pytest.raises(PayloadError) as info:
        decode(
            topic("btn-000001", "events"),
            payload(**PRESS),
            now_ms=NOW_MS,
            registry=lambda _id: None,
        )
    assert info.value.reason is ReasonCode.UNKNOWN_DEVICE


def test_prefix_is_stripped_and_enforced() -> None:
    prefixed = "tenant-a/" + topic("btn-000001", "events")
    assert decode(prefixed, payload(**PRESS), now_ms=NOW_MS, prefix="tenant-a/").seq == 3
    with pytest.raises(PayloadError) as info:
        decode(topic("btn-000001", "events"), payload(**PRESS), now_ms=NOW_MS, prefix="tenant-a/")
    assert info.value.reason is ReasonCode.BAD_TOPIC


# --- hypothesis ---------------------------------------------------------------------------

device_ids = st.from_regex(r"\A[a-z0-9][a-z0-9-]{2,20}\Z")
seqs = st.integers(0, 2**40)
tss = st.integers(0, NOW_MS)
batteries = st.none() | st.floats(0, 100)
coords_lat = st.floats(-90, 90)
coords_lon = st.floats(-180, 180)
accs = st.floats(0.1, 500)
hr = st.none() | st.integers(0, 250)
g = st.floats(-16, 16)


def _common(dtype: DeviceType) -> dict[str, Any]:
    return {
        "device_id": device_ids,
        "type": st.just(dtype),
        "seq": seqs,
        "ts": tss,
        "battery_pct": batteries,
    }


messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        SmokeTelemetry,
        **_common(DeviceType.SMOKE),
        smoke_db_m=st.floats(0, 5),
        temp_c=st.floats(-30, 200),
    ),
    st.builds(
        BandTelemetry,
        **_common(DeviceType.BAND),
        lat=coords_lat,
        lon=coords_lon,
        hacc_m=accs,
        hr_bpm=hr,
        steps=st.none() | st.integers(0, 5000),
        worn=st.none() | st.booleans(),
    ),
    st.builds(
        CaneTelemetry,
        **_common(DeviceType.CANE),
        rate_hz=st.integers(10, 200),
        accel_g=st.lists(st.tuples(g, g, g), min_size=1, max_size=20).map(tuple),
        hr_bpm=hr,
    ),
    st.builds(
        Event,
        **_common(DeviceType.BUTTON),
        event=st.sampled_from(["press", "long_press", "cancel", "low_battery"]),
    ),
    st.builds(
        Status,
        device_id=device_ids,
        type=st.sampled_from(list(DeviceType)),
        online=st.booleans(),
        ts=st.none() | tss,
        heartbeat_s=st.none() | st.integers(1, 3600),
        battery_pct=batteries,
        rssi_dbm=st.none() | st.floats(-120, 0),
        fw=st.none() | st.text(max_size=10),
    ),
)


@given(messages)
def test_encode_then_decode_gives_back_the_original(msg: Message) -> None:
    topic_name, raw = encode_message(msg)
    assert decode(topic_name, raw, now_ms=NOW_MS) == msg


@settings(max_examples=60)
@given(messages, st.data())
def test_every_truncation_of_a_valid_payload_is_rejected(msg: Message, data: st.DataObject) -> None:
    topic_name, raw = encode_message(msg)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(PayloadError):
        decode(topic_name, raw[:cut], now_ms=NOW_MS)


@given(st.text(max_size=80), st.binary(max_size=300))
def test_any_bytes_on_any_topic_give_a_message_or_one_payload_error(
    topic_name: str, raw: bytes
) -> None:
    try:
        decode(topic_name, raw, now_ms=NOW_MS, registry=REGISTRY)
    except PayloadError as exc:
        assert isinstance(exc.reason, ReasonCode)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    st.sampled_from(sorted(REGISTRY)),
    st.sampled_from(["telemetry", "events", "status"]),
    st.sampled_from([SMOKE, BAND, CANE, PRESS]),
    st.dictionaries(
        st.sampled_from(
            [
                "v",
                "type",
                "seq",
                "ts",
                "event",
                "lat",
                "lon",
                "hacc_m",
                "accel_g",
                "rate_hz",
                "smoke_db_m",
                "temp_c",
                "online",
                "battery_pct",
                "worn",
                "hr_bpm",
            ]
        ),
        json_values,
        max_size=4,
    ),
)
def test_mutated_payloads_give_a_message_or_one_payload_error(
    device_id: str, channel: str, base: dict[str, Any], changes: dict[str, Any]
) -> None:
    raw = json.dumps({**base, **changes}).encode()
    try:
        decode(topic(device_id, channel), raw, now_ms=NOW_MS, registry=REGISTRY)
    except PayloadError as exc:
        assert isinstance(exc.reason, ReasonCode)


def test_encode_is_compact_and_omits_absent_fields() -> None:
    msg = Event(device_id="btn-000001", type=DeviceType.BUTTON, seq=3, ts=NOW_MS, event="press")
    assert encode(msg) == (b'{"v":1,"type":"button","seq":3,"ts":1764340000000,"event":"press"}')


@given(
    st.sampled_from(sorted(REGISTRY)),
    st.sampled_from(["telemetry", "events", "status"]),
    st.binary(max_size=300),
)
def test_any_bytes_on_a_device_topic_give_a_message_or_one_payload_error(
    device_id: str, channel: str, raw: bytes
) -> None:
    try:
        decode(topic(device_id, channel), raw, now_ms=NOW_MS, registry=REGISTRY)
    except PayloadError as exc:
        assert exc.reason is not ReasonCode.BAD_TOPIC
