"""Read-back of stored band readings for alerting's start-up warm-up."""

from __future__ import annotations

import time

import psycopg

from gateway import BandTelemetry, DeviceType, Fleet
from ingest import readback
from ingest.batch import Batch
from ingest.db import BatchWriter
from ingest.migrate import storage_mode
from ingest.settings import WriteMethod

MIN_MS = 60_000


def _fix(device_id: str, seq: int, ts: int, hr_bpm: int | None) -> BandTelemetry:
    return BandTelemetry(
        device_id=device_id,
        type=DeviceType.BAND,
        seq=seq,
        ts=ts,
        lat=39.93,
        lon=116.37,
        hacc_m=5.0,
        hr_bpm=hr_bpm,
        steps=seq,
        worn=True,
    )


def _store_hour(registered: str, bands: list[str], now: int) -> None:
    batch = Batch()
    for band in bands:
        # One reading a minute for 60 minutes; every third one has no heart rate.
        for i in range(60):
            ts = now - (60 - i) * MIN_MS
            batch.add(_fix(band, i, ts, None if i % 3 == 0 else 70 + i % 5), ts + 200)
    with psycopg.connect(registered) as conn:
        BatchWriter(WriteMethod.UNNEST, storage_mode(conn)).write(conn, batch)


def test_band_movement_is_the_receive_window_oldest_first(registered: str, fleet: Fleet) -> None:
    bands = [d.id for d in fleet.devices if d.type is DeviceType.BAND]
    now = int(time.time() * 1000)
    _store_hour(registered, bands, now)
    with psycopg.connect(registered) as conn:
        rows = readback.band_movement(conn, now - 20 * MIN_MS, now - 5 * MIN_MS)
    assert [r[1] for r in rows] == sorted(r[1] for r in rows), "oldest receipt first"
    for band in bands:
        mine = [r for r in rows if r[0] == band]
        # Received in [now-20 min, now-5 min): minutes 40..54 (received 200 ms after ts).
        assert [r[3] for r in mine] == [float(i) for i in range(40, 55)]
        assert all(r[1] - r[2] == 200 for r in mine)


def test_band_heart_rates_are_the_newest_per_band_within_the_range(
    registered: str, fleet: Fleet
) -> None:
    bands = [d.id for d in fleet.devices if d.type is DeviceType.BAND]
    now = int(time.time() * 1000)
    _store_hour(registered, bands, now)
    with psycopg.connect(registered) as conn:
        rows = readback.band_heart_rates(conn, bands, now - 50 * MIN_MS, now - 20 * MIN_MS, 4)
        none = readback.band_heart_rates(conn, ["no-such-band"], 0, now, 4)
    assert none == []
    for band in bands:
        mine = [r for r in rows if r[0] == band]
        # Before minute 40, the 4 newest readings with a heart rate: minutes 38, 37, 35, 34.
        assert [r[3] for r in mine] == [38.0, 37.0, 35.0, 34.0]
        assert all(r[4] is not None for r in mine)


def test_band_reads_without_ingest_tables_are_empty(schema_url: str) -> None:
    with psycopg.connect(schema_url) as conn:
        assert readback.band_movement(conn, 0, 1) == []
        assert readback.band_heart_rates(conn, ["b"], 0, 1, 10) == []
