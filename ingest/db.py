"""Database adapter of ingest: connections and the batch writer (binary COPY or unnest)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from gateway import BandTelemetry, CaneTelemetry, Event, Message, SmokeTelemetry, Status
from ingest.batch import Batch, Kind, LastSeen, row_time_ms, week_start_ms
from ingest.migrate import StorageMode
from ingest.settings import WriteMethod

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
Row = tuple[Any, ...]
# Errors after which the same batch is tried again on a fresh connection (STYLE.md "Errors" 3).
RETRYABLE: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)
_MS = "timestamptz 'epoch' + {} * interval '1 millisecond'"


def connect(url: str, *, autocommit: bool = False, timeout_s: int = 5) -> Conn:
    """Open a connection; no server-side prepared statements (poolers and pglite share sessions)."""
    return psycopg.connect(
        url, autocommit=autocommit, connect_timeout=timeout_s, prepare_threshold=None
    )


@dataclass(frozen=True, slots=True)
class Column:
    """One stored column: its name, the staging/unnest type and how to read it from a message."""

    name: str
    pg_type: str
    get: Callable[[Any, int], Any]


def _flat(window: CaneTelemetry) -> list[float]:
    return [c for sample in window.accel_g for c in sample]


def _common(*extra: Column) -> tuple[Column, ...]:
    return (
        Column("ts_ms", "bigint", lambda m, r: m.ts),
        Column("device_id", "text", lambda m, r: m.device_id),
        Column("seq", "bigint", lambda m, r: m.seq),
        Column("battery_pct", "real", lambda m, r: m.battery_pct),
        *extra,
        Column("received_ms", "bigint", lambda m, r: r),
    )


COLUMNS: dict[Kind, tuple[Column, ...]] = {
    Kind.SMOKE: _common(
        Column("smoke_db_m", "real", lambda m, r: m.smoke_db_m),
        Column("temp_c", "real", lambda m, r: m.temp_c),
    ),
    Kind.BAND: _common(
        Column("lat", "double precision", lambda m, r: m.lat),
        Column("lon", "double precision", lambda m, r: m.lon),
        Column("hacc_m", "real", lambda m, r: m.hacc_m),
        Column("hr_bpm", "integer", lambda m, r: m.hr_bpm),
        Column("steps", "integer", lambda m, r: m.steps),
        Column("worn", "boolean", lambda m, r: m.worn),
    ),
    Kind.CANE: _common(
        Column("rate_hz", "smallint", lambda m, r: m.rate_hz),
        Column("accel_g", "real[]", lambda m, r: _flat(m)),
        Column("lat", "double precision", lambda m, r: m.lat),
        Column("lon", "double precision", lambda m, r: m.lon),
        Column("hacc_m", "real", lambda m, r: m.hacc_m),
        Column("hr_bpm", "integer", lambda m, r: m.hr_bpm),
    ),
    Kind.EVENT: _common(
        Column("type", "text", lambda m, r: m.type.value),
        Column("event", "text", lambda m, r: m.event),
    ),
    Kind.STATUS: (
        Column("ts_ms", "bigint", row_time_ms),
        Column("device_id", "text", lambda m, r: m.device_id),
        Column("online", "boolean", lambda m, r: m.online),
        Column("has_ts", "boolean", lambda m, r: m.ts is not None),
        Column("heartbeat_s", "integer", lambda m, r: m.heartbeat_s),
        Column("battery_pct", "real", lambda m, r: m.battery_pct),
        Column("rssi_dbm", "real", lambda m, r: m.rssi_dbm),
        Column("fw", "text", lambda m, r: m.fw),
        Column("received_ms", "bigint", lambda m, r: r),
    ),
}
_TYPES = (SmokeTelemetry, BandTelemetry, CaneTelemetry, Event, Status)


def _target(col: Column) -> str:
    return {"ts_ms": "time", "received_ms": "received_at"}.get(col.name, col.name)


def _select_expr(col: Column, source: str) -> sql.Composable:
    ident = sql.Identifier(source, col.name)
    if col.name in ("ts_ms", "received_ms"):
        return sql.SQL(_MS).format(ident)
    return ident


def _insert_sql(kind: Kind, source: sql.Composable, alias: str) -> sql.Composed:
    cols = COLUMNS[kind]
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
        sql.Identifier(kind.value),
        sql.SQL(", ").join(sql.Identifier(_target(c)) for c in cols),
        sql.SQL(", ").join(_select_expr(c, alias) for c in cols),
        source,
    )


def _unnest_source(kind: Kind) -> sql.Composed:
    cols = COLUMNS[kind]
    # A 2-D array cannot be unnested row by row, so cane windows travel as array literals.
    params = sql.SQL(", ").join(
        sql.SQL("%s::text[]" if c.pg_type == "real[]" else f"%s::{c.pg_type}[]") for c in cols
    )
    return sql.SQL("unnest({}) AS u ({})").format(
        params, sql.SQL(", ").join(sql.Identifier(c.name) for c in cols)
    )


def _unnest_insert_sql(kind: Kind) -> sql.Composed:
    cols = COLUMNS[kind]
    exprs = [
        sql.SQL("{}::real[]").format(sql.Identifier("u", c.name))
        if c.pg_type == "real[]"
        else _select_expr(c, "u")
        for c in cols
    ]
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
        sql.Identifier(kind.value),
        sql.SQL(", ").join(sql.Identifier(_target(c)) for c in cols),
        sql.SQL(", ").join(exprs),
        _unnest_source(kind),
    )


def _array_literal(values: list[float]) -> str:
    return "{" + ",".join(repr(v) for v in values) + "}"


_DEAD_SQL = (
    "INSERT INTO dead_letters (received_at, topic, payload, reason, detail)"
    f" SELECT {_MS.format('r')}, t, p, c, d"
    " FROM unnest(%s::bigint[], %s::text[], %s::bytea[], %s::text[], %s::text[])"
    " AS u (r, t, p, c, d)"
)
_LAST_SEEN_SQL = (
    "INSERT INTO device_last_seen AS s (device_id, last_seen_at, last_ts, online, status_at,"
    " heartbeat_s, battery_pct, battery_ts)"
    f" SELECT d, {_MS.format('ls')}, lt, o, {_MS.format('sa')}, hb, bp, bt"
    " FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::boolean[], %s::bigint[],"
    " %s::integer[], %s::real[], %s::bigint[]) AS u (d, ls, lt, o, sa, hb, bp, bt)"
    " ON CONFLICT (device_id) DO UPDATE SET"
    " last_seen_at = GREATEST(s.last_seen_at, EXCLUDED.last_seen_at),"
    " last_ts = GREATEST(s.last_ts, EXCLUDED.last_ts),"
    " online = CASE WHEN EXCLUDED.status_at >= s.status_at OR s.status_at IS NULL"
    "   THEN coalesce(EXCLUDED.online, s.online) ELSE s.online END,"
    " heartbeat_s = CASE WHEN EXCLUDED.status_at >= s.status_at OR s.status_at IS NULL"
    "   THEN coalesce(EXCLUDED.heartbeat_s, s.heartbeat_s) ELSE s.heartbeat_s END,"
    " status_at = GREATEST(s.status_at, EXCLUDED.status_at),"
    " battery_pct = CASE WHEN EXCLUDED.battery_ts >= s.battery_ts OR s.battery_ts IS NULL"
    "   THEN coalesce(EXCLUDED.battery_pct, s.battery_pct) ELSE s.battery_pct END,"
    " battery_ts = GREATEST(s.battery_ts, EXCLUDED.battery_ts)"
)


@dataclass(slots=True)
class WriteResult:
    """What one committed batch did."""

    stored: Counter[Kind] = field(default_factory=Counter)
    duplicates: Counter[Kind] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)


class BatchWriter:
    """Writes a `Batch` in one transaction: series rows, dead letters, last-seen upserts.

    Plain PostgreSQL needs the weekly partitions to exist first; they are created in their own
    short transaction and remembered, so the steady state costs nothing.
    """

    def __init__(self, method: WriteMethod, mode: StorageMode) -> None:
        self.method = method
        self.mode = mode
        self._weeks: set[tuple[Kind, int]] = set()
        self._staged: set[int] = set()

    def write(self, conn: Conn, batch: Batch) -> WriteResult:
        """Store `batch` and commit; duplicates of stored messages are skipped by the key.

        Raises:
            psycopg.Error: nothing is stored then (the transaction is rolled back).
        """
        if self.mode is StorageMode.POSTGRESQL:
            self._ensure_partitions(conn, batch)
        result = WriteResult()
        try:
            self._write(conn, batch, result)
        except BaseException:
            # A rolled-back transaction also drops the temp tables it created.
            self._staged.clear()
            raise
        return result

    def _write(self, conn: Conn, batch: Batch, result: WriteResult) -> None:
        with conn.transaction():
            for kind, rows in batch.rows.items():
                if rows:
                    stored = self._insert(conn, kind, rows)
                    result.stored[kind] += stored
                    result.duplicates[kind] += len(rows) - stored
            if batch.dead:
                _write_dead(conn, batch)
                result.dead.update(d.reason.value for d in batch.dead)
            if batch.last_seen:
                # One lock order for every writer, so concurrent consumers cannot deadlock here.
                _write_last_seen(conn, sorted(batch.last_seen.values(), key=lambda s: s.device_id))

    def forget_connection(self) -> None:
        """Drop per-connection state (temp tables) after a reconnect."""
        self._staged.clear()

    def _insert(self, conn: Conn, kind: Kind, rows: list[tuple[Message, int]]) -> int:
        cols = COLUMNS[kind]
        if self.method is WriteMethod.UNNEST:
            arrays: list[list[Any]] = [[c.get(m, r) for m, r in rows] for c in cols]
            for i, c in enumerate(cols):
                if c.pg_type == "real[]":
                    arrays[i] = [_array_literal(v) for v in arrays[i]]
            cur = conn.execute(_unnest_insert_sql(kind), arrays)
            return cur.rowcount
        stage = f"stage_{kind.value}"
        self._stage(conn, kind, stage)
        with conn.cursor() as cur:
            copy_sql = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(sql.Identifier(stage))
            with cur.copy(copy_sql) as copy:
                copy.set_types([c.pg_type for c in cols])
                getters = [c.get for c in cols]
                for m, r in rows:
                    copy.write_row([g(m, r) for g in getters])
            cur.execute(_insert_sql(kind, sql.Identifier(stage), stage))
            stored = cur.rowcount
            cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage)))
        return stored

    def _stage(self, conn: Conn, kind: Kind, stage: str) -> None:
        key = id(conn) ^ hash(kind)
        if key in self._staged:
            return
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type))
            for c in COLUMNS[kind]
        )
        conn.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({})").format(sql.Identifier(stage), cols)
        )
        self._staged.add(key)

    def _ensure_partitions(self, conn: Conn, batch: Batch) -> None:
        wanted: dict[Kind, set[int]] = {}
        for kind, rows in batch.rows.items():
            for m, r in rows:
                week = week_start_ms(row_time_ms(m, r))
                if (kind, week) not in self._weeks:
                    wanted.setdefault(kind, set()).add(week)
        if not wanted:
            return
        with conn.transaction():
            for kind, weeks in wanted.items():
                conn.execute(
                    "SELECT ensure_week_partitions(%s::regclass,"
                    f" ARRAY(SELECT {_MS.format('w')} FROM unnest(%s::bigint[]) AS u (w)))",
                    (kind.value, sorted(weeks)),
                )
        self._weeks.update((kind, w) for kind, weeks in wanted.items() for w in weeks)


def _write_dead(conn: Conn, batch: Batch) -> None:
    dead = batch.dead
    conn.execute(
        _DEAD_SQL,
        (
            [d.received_ms for d in dead],
            [d.topic for d in dead],
            [d.payload for d in dead],
            [d.reason.value for d in dead],
            [d.detail for d in dead],
        ),
    )


def _write_last_seen(conn: Conn, seen: Sequence[LastSeen]) -> None:
    conn.execute(
        _LAST_SEEN_SQL,
        (
            [s.device_id for s in seen],
            [s.last_seen_ms for s in seen],
            [s.last_ts for s in seen],
            [s.online for s in seen],
            [s.status_ms for s in seen],
            [s.heartbeat_s for s in seen],
            [s.battery_pct for s in seen],
            [s.battery_ts for s in seen],
        ),
    )


def row_counts(conn: Conn) -> dict[str, int]:
    """Rows stored per series (`eldercare db stats`)."""
    out = {}
    for kind in Kind:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(kind.value))
        row = conn.execute(query).fetchone()
        out[kind.value] = int(row[0]) if row else 0
    return out


def dead_letter_counts(conn: Conn) -> dict[str, int]:
    """Dead letters per reason code."""
    rows = conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY reason")
    return {str(reason): int(n) for reason, n in rows.fetchall()}
