"""Retention in plain mode: old weekly partitions dropped whole, old dead letters deleted."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg

from ingest.db import connect
from ingest.retention import apply_retention

DAY_MS = 86_400_000


def _insert_event(conn: psycopg.Connection[tuple[object, ...]], at_ms: int, seq: int) -> None:
    conn.execute(
        "SELECT ensure_week_partitions('device_events', ARRAY[to_timestamp(%s / 1000.0)])",
        (at_ms,),
    )
    conn.execute(
        "INSERT INTO device_events (time, device_id, seq, type, event, received_at)"
        " VALUES (to_timestamp(%s / 1000.0), 'band-r', %s, 'band', 'sos', now())",
        (at_ms, seq),
    )


def _insert_dead(conn: psycopg.Connection[tuple[object, ...]], at_ms: int) -> None:
    conn.execute(
        "INSERT INTO dead_letters (received_at, topic, payload, reason)"
        " VALUES (to_timestamp(%s / 1000.0), 'x', '\\x00', 'bad_json')",
        (at_ms,),
    )


def _partitions(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'device_events'::regclass ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def test_plain_mode_drops_old_partitions_and_dead_letters(migrated_url: str) -> None:
    now = int(time.time() * 1000)
    with connect(migrated_url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM storage_settings").fetchone() == ("postgresql",)
        _insert_event(conn, now - 400 * DAY_MS, 1)  # past the 365 kept days
        _insert_event(conn, now - 380 * DAY_MS, 2)
        _insert_event(conn, now - 360 * DAY_MS, 3)  # inside: its week stays
        _insert_event(conn, now - DAY_MS, 4)
        for age_days in (40, 31, 29, 1):
            _insert_dead(conn, now - age_days * DAY_MS)
        before = _partitions(conn)
        assert len(before) == 4
        result = apply_retention(conn, now)
        assert sorted(result.dropped["device_events"]) == sorted(before[:2])
        assert result.deleted["dead_letters"] == 2
        assert _partitions(conn) == before[2:]
        seqs = [r[0] for r in conn.execute("SELECT seq FROM device_events ORDER BY seq")]
        assert seqs == [3, 4]
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (2,)
        # A second run finds nothing more to remove.
        again = apply_retention(conn, now)
        assert again.dropped["device_events"] == [] and again.deleted["dead_letters"] == 0


def test_kept_days_are_settings_and_the_command_runs(migrated_url: str) -> None:
    now = int(time.time() * 1000)
    with connect(migrated_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE retention_settings SET keep_days = 7 WHERE table_name = 'dead_letters'"
        )
        _insert_dead(conn, now - 8 * DAY_MS)
        _insert_dead(conn, now - 6 * DAY_MS)
    done = subprocess.run(
        [sys.executable, "-m", "eldercare", "db", "retention"],
        env={**os.environ, "DATABASE_URL": migrated_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert '"dead_letters": 1' in done.stdout
