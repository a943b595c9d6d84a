"""Message streams for the ingest tests, built with the gateway codec."""

from __future__ import annotations

import json
import random
import time

from gateway import (
    BandTelemetry,
    CaneTelemetry,
    DeviceType,
    Event,
    Fleet,
    Message,
    SmokeTelemetry,
    Status,
    encode_message,
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def valid_messages(fleet: Fleet, per_device: int, rng: random.Random) -> list[Message]:
    """`per_device` messages of every device, each with its own (ts, seq)."""
    base = now_ms() - 3_600_000
    out: list[Message] = []
    for device in fleet.devices:
        for seq in range(per_device):
            ts = base + seq * 1000 + rng.randrange(1000)
            out.append(_message(device.id, device.type, seq, ts, rng))
    rng.shuffle(out)
    return out


def _message(device_id: str, dtype: DeviceType, seq: int, ts: int, rng: random.Random) -> Message:
    battery = round(rng.uniform(5, 100), 1)
    if seq % 5 == 4:
        return Status(
            device_id=device_id,
            type=dtype,
            online=True,
            ts=ts,
            heartbeat_s=60,
            battery_pct=battery,
            rssi_dbm=-70.0,
            fw="1.4.2",
        )
    if dtype is DeviceType.BUTTON or seq % 5 == 3:
        event = {"button": "press", "smoke": "test", "band": "worn", "cane": "sos"}[dtype.value]
        return Event(device_id=device_id, type=dtype, seq=seq, ts=ts, event=event)
    if dtype is DeviceType.SMOKE:
        return SmokeTelemetry(
            device_id=device_id,
            type=dtype,
            seq=seq,
            ts=ts,
            battery_pct=battery,
            smoke_db_m=0.01,
            temp_c=21.5,
        )
    if dtype is DeviceType.BAND:
        return BandTelemetry(
            device_id=device_id,
            type=dtype,
            seq=seq,
            ts=ts,
            battery_pct=battery,
            lat=39.93,
            lon=116.37,
            hacc_m=8.0,
            hr_bpm=72,
            steps=seq,
            worn=True,
        )
    accel = tuple((0.0, 0.0, 1.0 + i / 100) for i in range(20))
    return CaneTelemetry(
        device_id=device_id,
        type=dtype,
        seq=seq,
        ts=ts,
        battery_pct=battery,
        rate_hz=10,
        accel_g=accel,
    )


def wire(messages: list[Message], prefix: str) -> list[tuple[str, bytes]]:
    return [encode_message(m, prefix) for m in messages]


def dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()


def malformed(fleet: Fleet, prefix: str, suffix: str) -> dict[str, list[tuple[str, bytes]]]:
    """At least one message per dead-letter reason code of contract §1, by reason."""
    smoke = next(d for d in fleet.devices if d.type is DeviceType.SMOKE)
    band = next(d for d in fleet.devices if d.type is DeviceType.BAND)
    root = f"{prefix}eldercare/v1/devices"
    good = {"v": 1, "type": "smoke", "seq": 1, "ts": now_ms(), "smoke_db_m": 0.0, "temp_c": 20.0}
    band_body = {
        "v": 1,
        "type": "band",
        "seq": 2,
        "ts": now_ms(),
        "lat": 39.9,
        "lon": 116.3,
        "hacc_m": 5.0,
    }
    return {
        "bad_topic": [
            (f"{root}/Bad_Id/telemetry", dumps(good)),
            (f"{root}/{smoke.id}/diagnostics", dumps(good)),
        ],
        "too_large": [(f"{root}/{smoke.id}/telemetry", b" " * (16 * 1024 + 1))],
        "bad_json": [
            (f"{root}/{smoke.id}/telemetry", b"{not json"),
            (f"{root}/{smoke.id}/events", b"\xff\xfe\x00"),
        ],
        "bad_schema": [
            (f"{root}/{smoke.id}/telemetry", dumps({k: v for k, v in good.items() if k != "seq"})),
            (f"{root}/{smoke.id}/telemetry", dumps({**good, "temp_c": 1e39})),
        ],
        "unknown_device": [(f"{root}/ghost-{suffix}/telemetry", dumps(good))],
        "type_mismatch": [(f"{root}/{smoke.id}/telemetry", dumps(band_body))],
        "future_ts": [
            (f"{root}/{band.id}/telemetry", dumps({**band_body, "ts": now_ms() + 10 * 60 * 1000}))
        ],
    }
