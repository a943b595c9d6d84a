"""Pure core: table tests of build_batch, last-seen folding and partition weeks."""

from __future__ import annotations

import json

import pytest

from gateway import DeviceType, ReasonCode, SmokeTelemetry, Status, encode_message
from ingest.batch import Inbound, Kind, build_batch, unknown_devices, week_start_ms

NOW = 1_764_340_000_000
REG = {"smk-001": DeviceType.SMOKE, "bnd-001": DeviceType.BAND}
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
            f"{T}/smk-001/status",
            b'{"v":1,"type":"smoke","online":true,"fw":"a\\u0000"}',
            ReasonCode.BAD_SCHEMA,
        ),
    ],
    ids=["topic", "large", "json", "schema", "unknown", "mismatch", "future", "float4", "nul"],
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
    assert (seen.last_ts, seen.last_seen_ms, seen.online) == (NOW - 1000, NOW + 20, False)
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
