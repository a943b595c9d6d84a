"""Implausibly old device times are stored without creating partitions or doomed chunks."""

from __future__ import annotations

import json

import psycopg
import pytest

from gateway import DeviceType, Fleet, SmokeTelemetry, encode_message
from ingest.batch import Inbound, Kind, build_batch
from ingest.db import BatchWriter, connect
from ingest.migrate import StorageMode, apply_migrations, recorded_mode
from ingest.registry import import_fleet, load_registry
from ingest.settings import WriteMethod
from tests.ingest.conftest import make_fleet
from tests.ingest.streams import now_ms


def _epoch_smoke(fleet: Fleet, prefix: str = "") -> list[Inbound]:
    smoke = next(d for d in fleet.devices if d.type is DeviceType.SMOKE)
    now = now_ms()
    messages = [
        SmokeTelemetry(
            device_id=smoke.id, type=DeviceType.SMOKE, seq=s, ts=ts, smoke_db_m=0.01, temp_c=21.0
        )
        for s, ts in ((7, 0), (8, 1_000), (9, now - 1000))
    ]
    return [Inbound(*encode_message(m, prefix), received_ms=now) for m in messages]


def _write_twice(
    conn: psycopg.Connection[tuple[object, ...]], fleet: Fleet, methods: list[WriteMethod]
) -> None:
    import_fleet(conn, fleet)
    registry = load_registry(conn)
    conn.commit()
    mode = recorded_mode(conn)
    assert mode is not None
    items = _epoch_smoke(fleet)
    for method in methods:  # the second write is a redelivery: nothing new
        batch = build_batch(items, registry)
        assert (len(batch.misdated), len(batch.rows[Kind.SMOKE])) == (2, 1)
        BatchWriter(method, mode).write(conn, batch)


def _misdated(conn: psycopg.Connection[tuple[object, ...]], device_id: str) -> list[object]:
    rows = conn.execute(
        "SELECT device_ts, seq, kind, body FROM misdated_messages WHERE device_id = %s"
        " ORDER BY seq",
        (device_id,),
    ).fetchall()
    return [(ts, seq, kind, json.dumps(body, sort_keys=True)) for ts, seq, kind, body in rows]


def _expected(fleet: Fleet) -> list[object]:
    out = []
    for item in _epoch_smoke(fleet)[:2]:
        body = json.loads(item.payload)
        out.append((body["ts"], body["seq"], "smoke_telemetry", json.dumps(body, sort_keys=True)))
    return out


def test_epoch_ts_is_stored_without_a_1970_partition(migrated_url: str, device_suffix: str) -> None:
    fleet = make_fleet(device_suffix, per_type=1)
    smoke_id = f"smoke-{device_suffix}-0"
    with connect(migrated_url) as conn:
        _write_twice(conn, fleet, [WriteMethod.COPY, WriteMethod.UNNEST])
        parts = [
            str(r[0])
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'smoke_telemetry'::regclass"
            ).fetchall()
        ]
        series = conn.execute("SELECT count(*) FROM smoke_telemetry").fetchone()
        stored = _misdated(conn, smoke_id)
    assert stored == _expected(fleet)
    assert series == (1,)  # the plausible reading went to the series
    assert len(parts) == 1 and not any(p.startswith("smoke_telemetry_p19") for p in parts), parts


@pytest.mark.slow
def test_epoch_ts_makes_no_chunk_on_timescaledb(pglite_url: str, device_suffix: str) -> None:
    fleet = make_fleet(device_suffix, per_type=1)
    with connect(pglite_url) as conn:
        apply_migrations(conn)
        assert recorded_mode(conn) is StorageMode.TIMESCALEDB
        conn.commit()
        # pglite has no COPY FROM STDIN; the unnest writer twice.
        _write_twice(conn, fleet, [WriteMethod.UNNEST, WriteMethod.UNNEST])
        old = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'smoke_telemetry' AND range_end < '2000-01-01'"
        ).fetchone()
        stored = _misdated(conn, f"smoke-{device_suffix}-0")
        conn.commit()
    assert stored == _expected(fleet)
    assert old == (0,)
