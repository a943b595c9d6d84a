"""Migrations in both storage modes; the TimescaleDB mode runs on pglite (PostgreSQL 17 + TSDB)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import psycopg

from gateway import Fleet
from ingest.batch import Inbound, Kind, build_batch, kind_of
from ingest.db import BatchWriter, connect
from ingest.migrate import StorageMode, apply_migrations, recorded_mode, storage_mode
from ingest.registry import import_fleet, load_registry
from ingest.settings import WriteMethod
from tests.ingest.conftest import make_fleet
from tests.ingest.streams import now_ms, valid_messages, wire

ROOT = Path(__file__).resolve().parents[2]
VIEWS = (
    "band_hourly",
    "cane_hourly",
    "smoke_hourly",
    "event_hourly",
    "elder_activity_hourly",
    "device_health",
)


def _write_stream(
    conn: psycopg.Connection[tuple[object, ...]],
    fleet: Fleet,
    method: WriteMethod,
    mode: StorageMode,
) -> dict[str, int]:
    messages = valid_messages(fleet, per_device=6, rng=random.Random(1))
    items = [Inbound(t, p, now_ms()) for t, p in wire(messages, "")]
    writer = BatchWriter(method, mode)
    registry = load_registry(conn)
    conn.commit()
    first = writer.write(conn, build_batch(items, registry))
    second = writer.write(conn, build_batch(items[:10], registry))  # replayed: all duplicates
    assert sum(second.stored.values()) == 0 and sum(second.duplicates.values()) == 10
    counts: dict[str, int] = {}
    for m in messages:
        counts[kind_of(m).value] = counts.get(kind_of(m).value, 0) + 1
    assert {k.value: n for k, n in first.stored.items()} == counts
    return counts


def _activity(conn: psycopg.Connection[tuple[object, ...]], fleet: Fleet) -> dict[str, int]:
    rows = conn.execute(
        "SELECT elder_id, sum(steps + band_fixes + cane_windows + events)::int"
        " FROM elder_activity_hourly WHERE elder_id = ANY(%s) GROUP BY elder_id",
        ([e.id for e in fleet.elders],),
    ).fetchall()
    return {str(e): int(str(n)) for e, n in rows}


def test_plain_mode_migrates_twice_and_serves_the_same_views(schema_url: str) -> None:
    with connect(schema_url) as conn:
        first = apply_migrations(conn)
        second = apply_migrations(conn)
        mode = recorded_mode(conn)
        kinds = dict(
            conn.execute(
                "SELECT c.relname, c.relkind FROM pg_class c"
                " WHERE c.relnamespace = current_schema()::regnamespace"
            ).fetchall()
        )
    assert storage_mode is not None and mode is StorageMode.POSTGRESQL
    assert "002_timeseries.plain" in first and "004_aggregates.plain" in first
    assert not any(".timescale" in stem for stem in first)
    assert second == []
    assert all(kinds[k.value] == "p" for k in Kind)  # declarative partitioning
    assert all(kinds[v] == "v" for v in VIEWS)
    assert kinds["cane_telemetry_time_brin"] == "I"


def test_plain_mode_writes_partitions_and_aggregates(migrated_url: str, device_suffix: str) -> None:
    fleet = make_fleet(device_suffix)
    with connect(migrated_url) as conn:
        import_fleet(conn, fleet)
        counts = _write_stream(conn, fleet, WriteMethod.COPY, StorageMode.POSTGRESQL)
        parts = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'cane_telemetry'::regclass"
        ).fetchone()
        activity = _activity(conn, fleet)
    assert parts is not None and parts[0] >= 1
    assert set(activity) == {e.id for e in fleet.elders}
    assert sum(activity.values()) > counts[Kind.EVENT.value]


def test_db_info_and_stats_commands(migrated_url: str) -> None:
    env = {"DATABASE_URL": migrated_url, "PATH": "/usr/bin:/bin"}
    info = subprocess.run(
        [sys.executable, "-m", "eldercare", "db", "info"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    stats = subprocess.run(
        [sys.executable, "-m", "eldercare", "db", "stats", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "storage mode: postgresql" in info.stdout, info.stderr
    assert "005_elder_views" in info.stdout
    out = json.loads(stats.stdout)
    assert out["rows"] == {k.value: 0 for k in Kind} and out["dead_letters"] == {}
    assert out["misdated"] == 0


def test_timescaledb_mode_on_pglite(pglite_url: str, device_suffix: str) -> None:
    fleet = make_fleet(device_suffix, per_type=1)
    with connect(pglite_url) as conn:
        assert storage_mode(conn) is StorageMode.TIMESCALEDB
        conn.rollback()
        apply_migrations(conn)  # the session's pglite database may be migrated already
        assert apply_migrations(conn) == []
        recorded = set(conn.execute("SELECT version, variant FROM schema_migrations").fetchall())
        assert {("002", "timescale"), ("004", "timescale")} <= recorded
        assert not {v for v in recorded if v[1] == "plain"}
        hypertables = {
            r[0]
            for r in conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables"
            ).fetchall()
        }
        caggs = {
            r[0]
            for r in conn.execute(
                "SELECT view_name FROM timescaledb_information.continuous_aggregates"
            ).fetchall()
        }
        jobs = {
            r[0]
            for r in conn.execute("SELECT proc_name FROM timescaledb_information.jobs").fetchall()
        }
        segment = conn.execute(
            "SELECT attname FROM timescaledb_information.compression_settings"
            " WHERE hypertable_name = 'cane_telemetry' AND segmentby_column_index = 1"
        ).fetchone()
        conn.commit()
        import_fleet(conn, fleet)
        counts = _write_stream(conn, fleet, WriteMethod.UNNEST, StorageMode.TIMESCALEDB)
        activity = _activity(conn, fleet)
        # The session's pglite database is shared: count this test's devices only.
        ids = [d.id for d in fleet.devices]
        cane = conn.execute(
            "SELECT sum(windows)::int FROM cane_hourly WHERE device_id = ANY(%s)", (ids,)
        ).fetchone()
        health = conn.execute(
            "SELECT count(*) FROM device_health WHERE last_seen_at IS NOT NULL"
            " AND device_id = ANY(%s)",
            (ids,),
        ).fetchone()
        conn.commit()
    assert hypertables == {k.value for k in Kind}
    assert caggs == {"band_hourly", "cane_hourly", "smoke_hourly", "event_hourly"}
    assert {"policy_compression", "policy_retention", "policy_refresh_continuous_aggregate"} <= jobs
    assert segment == ("device_id",)
    assert set(activity) == {e.id for e in fleet.elders}
    assert cane == (counts[Kind.CANE.value],)
    assert health == (len(fleet.devices),)
