"""Plain PostgreSQL: ingest makes this week's and next week's partitions before any message."""

from __future__ import annotations

import datetime as dt
import time

import psycopg

from ingest.batch import MS_PER_WEEK, Kind, week_start_ms
from ingest.db import BatchWriter, connect
from ingest.migrate import StorageMode
from ingest.settings import WriteMethod
from tests.ingest.conftest import running, settings_for, wait_for
from tests.ingest.streams import now_ms


def _partitions(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT p.relname, c.relname FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
        ).fetchall()
    return {(str(parent), str(child)) for parent, child in rows}


def _expected(now: int) -> set[tuple[str, str]]:
    out = set()
    for week in (week_start_ms(now), week_start_ms(now) + MS_PER_WEEK):
        day = dt.datetime.fromtimestamp(week / 1000, dt.UTC).strftime("%Y%m%d")
        out |= {(kind.value, f"{kind.value}_p{day}") for kind in Kind}
    return out


def test_prepare_weeks_makes_both_weeks_of_every_series_once(registered: str) -> None:
    now = now_ms()
    assert _partitions(registered) == set()
    writer = BatchWriter(WriteMethod.COPY, StorageMode.POSTGRESQL)
    with connect(registered) as conn:
        writer.prepare_weeks(conn, now)
        assert _partitions(registered) == _expected(now)
        # Known now: no statement at all the second time, even with the tables gone.
        for _parent, child in _expected(now):
            conn.execute(f"DROP TABLE {child}")
        conn.commit()
        writer.prepare_weeks(conn, now)
    assert _partitions(registered) == set()


def test_timescaledb_mode_leaves_chunks_to_timescaledb(registered: str) -> None:
    with connect(registered) as conn:
        BatchWriter(WriteMethod.COPY, StorageMode.TIMESCALEDB).prepare_weeks(conn, now_ms())
    assert _partitions(registered) == set()


def test_the_service_makes_them_at_start_before_any_message(
    registered: str, mqtt_url: str, topic_prefix: str
) -> None:
    with running(settings_for(registered, mqtt_url, topic_prefix)) as service:
        assert service.wait_subscribed(30)
        assert wait_for(lambda: _partitions(registered) == _expected(now_ms()), 30)


def test_a_table_held_by_a_reader_is_left_for_the_next_hour(registered: str) -> None:
    now = now_ms()
    writer = BatchWriter(WriteMethod.COPY, StorageMode.POSTGRESQL)
    with connect(registered) as reader, connect(registered) as conn:
        reader.execute("SELECT count(*) FROM band_telemetry").fetchone()  # held till commit
        started = time.monotonic()
        writer.prepare_weeks(conn, now, lock_timeout_ms=200)
        assert time.monotonic() - started < 10  # not until the reader is done
        made = _partitions(registered)
        assert made == {p for p in _expected(now) if p[0] != "band_telemetry"}
        reader.commit()
        writer.prepare_weeks(conn, now, lock_timeout_ms=200)
    assert _partitions(registered) == _expected(now)
