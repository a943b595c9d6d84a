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


def test_band_samples_keep_the_recent_window_and_the_newest_heart_rates(
    registered: str, fleet: Fleet
) -> None:
    bands = [d.id for d in fleet.devices if d.type is DeviceType.BAND]
    now = int(time.time() * 1000)
    batch = Batch()
    for band in bands:
        # One reading a minute for 60 minutes; every third one has no heart rate.
        for i in range(60):
            ts = now - (60 - i) * MIN_MS
            batch.add(_fix(band, i, ts, None if i % 3 == 0 else 70 + i % 5), ts + 200)
    with psycopg.connect(registered) as conn:
        BatchWriter(WriteMethod.UNNEST, storage_mode(conn)).write(conn, batch)
        rows = readback.band_samples(
            conn, now - 50 * MIN_MS, now - 5 * MIN_MS, all_since_ms=now - 20 * MIN_MS, per_device=4
        )
    assert [r[1] for r in rows] == sorted(r[1] for r in rows), "oldest receipt first"
    for band in bands:
        mine = [r for r in rows if r[0] == band]
        recent = [r for r in mine if r[1] >= now - 20 * MIN_MS]
        older = [r for r in mine if r[1] < now - 20 * MIN_MS]
        # Everything received in [now-20 min, now-5 min): minutes 40..54.
        assert [r[3] for r in recent] == [float(i) for i in range(40, 55)]
        # Before that, only the 4 newest readings with a heart rate: minutes 38, 37, 35, 34.
        assert sorted(int(r[3]) for r in older) == [34, 35, 37, 38]
        assert all(r[4] is not None for r in older)
        assert all(r[1] - r[2] == 200 for r in mine)


def test_band_samples_without_ingest_tables_is_empty(schema_url: str) -> None:
    with psycopg.connect(schema_url) as conn:
        assert readback.band_samples(conn, 0, 1, all_since_ms=0, per_device=10) == []
