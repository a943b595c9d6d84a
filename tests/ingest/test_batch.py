"""Pure core: table tests of build_batch, last-seen folding and partition weeks."""

from __future__ import annotations

import json
import math

import pytest

from gateway import DeviceType, ReasonCode, SmokeTelemetry, Status, encode_message
from ingest.batch import Batch, Inbound, Kind, build_batch, unknown_devices, week_start_ms

NOW = 1_764_340_000_000
REG = {"smk-001": DeviceType.SMOKE, "bnd-001": DeviceType.BAND, "cane-001": DeviceType.CANE}
T = "eldercare/v1/devices"


def _smoke(seq: int, ts: int, battery: float | None = None) -> tuple[str, bytes]:
    return encode_message(
        SmokeTelemetry(
            device_id="smk-001",
            type=DeviceType.SMOKE,
            seq=seq,
            ts=ts,
            battery_pct=battery,
            smoke_db_m=0.0,
            temp_c=20.0,
        )
    )


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (f"{T}/SMK/telemetry", b"{}", ReasonCode.BAD_TOPIC),
        (f"{T}/smk-001/telemetry", b"x" * 20000, ReasonCode.TOO_LARGE),
        (f"{T}/smk-001/telemetry", b"{", ReasonCode.BAD_JSON),
        (f"{T}/smk-001/telemetry", b'{"v":1,"type":"smoke"}', ReasonCode.BAD_SCHEMA),
        (f"{T}/zzz-001/telemetry", _smoke(1, NOW)[1], ReasonCode.UNKNOWN_DEVICE),
        (f"{T}/bnd-001/telemetry", _smoke(1, NOW)[1], ReasonCode.TYPE_MISMATCH),
        (f"{T}/smk-001/telemetry", _smoke(1, NOW + 301_000)[1], ReasonCode.FUTURE_TS),
        (
            f"{T}/smk-001/telemetry",
            json.dumps(
                {"v": 1, "type": "smoke", "seq": 1, "ts": NOW, "smoke_db_m": 1e39, "temp_c": 1}
            ).encode(),
            ReasonCode.BAD_SCHEMA,
        ),
        (
            f"{T}/cane-001/telemetry",
            json.dumps(
                {
                    "v": 1,
                    "type": "cane",
                    "seq": 1,
                    "ts": NOW,
                    "rate_hz": 50,
                    "accel_g": [[0.0, 0.0, 1.0], [-3.5e38, 0.0, 1.0]],
                }
            ).encode(),
            ReasonCode.BAD_SCHEMA,
        ),
        (
            f"{T}/smk-001/status",
            b'{"v":1,"type":"smoke","online":true,"fw":"a\\u0000"}',
            ReasonCode.BAD_SCHEMA,
        ),
    ],
    ids=[
        "topic",
        "large",
        "json",
        "schema",
        "unknown",
        "mismatch",
        "future",
        "float4",
        "float4-window",
        "nul",
    ],
)
def test_rejects_with_reason_and_keeps_raw(topic: str, payload: bytes, reason: ReasonCode) -> None:
    batch = build_batch([Inbound(topic, payload, NOW)], REG)
    assert batch.accepted == 0
    assert [(d.reason, d.payload, d.topic) for d in batch.dead] == [(reason, payload, topic)]


def test_accepts_into_kinds_and_folds_last_seen() -> None:
    items = [
        Inbound(*_smoke(2, NOW - 1000, battery=50.0), received_ms=NOW),
        Inbound(*_smoke(1, NOW - 5000, battery=60.0), received_ms=NOW + 10),
        Inbound(
            *encode_message(Status(device_id="smk-001", type=DeviceType.SMOKE, online=False)),
            received_ms=NOW + 20,
        ),
    ]
    batch = build_batch(items, REG)
    seen = batch.last_seen["smk-001"]
    assert len(batch.rows[Kind.SMOKE]) == 2 and len(batch.rows[Kind.STATUS]) == 1
    # The Will (published by the broker, not the device) sets `online` but is not traffic.
    assert (seen.last_ts, seen.last_seen_ms, seen.online) == (NOW - 1000, NOW + 10, False)
    assert (seen.battery_pct, seen.battery_ts) == (50.0, NOW - 1000)  # newest by device time


def test_unknown_devices_and_weeks() -> None:
    items = [
        Inbound(f"{T}/new-001/events", b"", NOW),
        Inbound("junk", b"", NOW),
        Inbound(*_smoke(1, NOW), received_ms=NOW),
    ]
    assert unknown_devices(items, REG) == {"new-001"}
    # 2025-11-28 (a Friday) -> Monday 2025-11-24 00:00 UTC.
    assert week_start_ms(NOW) == 1_763_942_400_000
    assert week_start_ms(1_763_942_400_000) == 1_763_942_400_000
    assert week_start_ms(0) == -3 * 86_400_000


def _status(online: bool, ts: int | None = None) -> tuple[str, bytes]:
    return encode_message(
        Status(device_id="smk-001", type=DeviceType.SMOKE, online=online, ts=ts, heartbeat_s=60)
    )


@pytest.mark.parametrize(
    ("ts", "misdated"),
    [
        (0, True),  # clock reset to 1970 after a battery change
        (NOW - 31 * 86_400_000, True),
        (NOW - 29 * 86_400_000, False),  # a late gateway replay: still a series row
        (NOW - 20_000, False),
        (NOW + 240_000, False),  # 4 minutes fast, inside the contract's 5-minute window
    ],
    ids=["epoch", "31d", "29d", "20s", "fast"],
)
def test_implausibly_old_device_time_is_kept_aside(ts: int, misdated: bool) -> None:
    batch = build_batch([Inbound(*_smoke(1, ts), received_ms=NOW)], REG)
    assert batch.accepted == 1 and not batch.dead
    assert (len(batch.misdated), len(batch.rows[Kind.SMOKE])) == ((1, 0) if misdated else (0, 1))
    # Still real traffic: the device is alive even though its clock is not.
    assert batch.last_seen["smk-001"].last_seen_ms == NOW


def test_a_retained_replay_is_stored_but_moves_nothing() -> None:
    items = [
        Inbound(*_status(True, NOW - 5000), received_ms=NOW, retain=True),
        Inbound(*_status(False), received_ms=NOW + 5, retain=True),
    ]
    batch = build_batch(items, REG)
    assert len(batch.rows[Kind.STATUS]) == 2
    assert batch.last_seen == {}


def test_wills_are_keyed_on_the_last_real_traffic_before_them() -> None:
    live = [
        Inbound(*_smoke(1, NOW - 1000), received_ms=NOW),
        Inbound(*_status(False), received_ms=NOW + 90_000),
        Inbound(*_smoke(2, NOW + 100_000), received_ms=NOW + 100_000),  # after: not the anchor
    ]
    batch = build_batch(live, REG)
    batch.anchor_wills({"smk-001": NOW - 60_000})
    (will,) = batch.rows[Kind.STATUS]
    assert will.time_ms == NOW  # the newest traffic before it, in this batch
    # Later copies (a replay to a new subscription) anchor on the stored last-seen: same key.
    for received in (NOW + 200_000, NOW + 900_000):
        replay = build_batch([Inbound(*_status(False), received_ms=received, retain=True)], REG)
        replay.anchor_wills({"smk-001": NOW + 100_000})
        assert [r.time_ms for r in replay.rows[Kind.STATUS]] == [NOW + 100_000]
    # A device never heard from keeps the Will's receive time.
    alone = build_batch([Inbound(*_status(False), received_ms=NOW)], REG)
    alone.anchor_wills({})
    assert [r.time_ms for r in alone.rows[Kind.STATUS]] == [NOW]


def test_a_cane_window_carries_its_peak_whether_decoded_or_added() -> None:
    samples = [[0.0, 0.0, 1.0], [1.2, -2.0, 0.5], [0.1, 0.2, 0.9]]
    payload = json.dumps(
        {"v": 1, "type": "cane", "seq": 4, "ts": NOW, "rate_hz": 50, "accel_g": samples}
    ).encode()
    batch = build_batch([Inbound(f"{T}/cane-001/telemetry", payload, NOW)], REG)
    (row,) = batch.rows[Kind.CANE]
    expected = max(math.sqrt(x * x + y * y + z * z) for x, y, z in samples)
    assert row.peak_g == pytest.approx(expected, rel=1e-12)
    again = Batch()
    again.add(row.message, NOW)  # no peak given: computed by add
    assert again.rows[Kind.CANE][0].peak_g == row.peak_g
    smoke = build_batch([Inbound(*_smoke(1, NOW), NOW)], REG).rows[Kind.SMOKE][0]
    assert smoke.peak_g is None
