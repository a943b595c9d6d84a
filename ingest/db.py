"""Database adapter of ingest: connections and the batch writer (binary COPY or unnest)."""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import psycopg
from psycopg import pq, sql
from psycopg.adapt import Dumper

from gateway import BandTelemetry, CaneTelemetry, Event, SmokeTelemetry, Status, to_wire
from ingest import pg
from ingest.batch import MS_PER_WEEK, Batch, Kind, LastSeen, Row, week_start_ms
from ingest.migrate import StorageMode
from ingest.settings import WriteMethod

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
# Errors after which the same batch is tried again on a fresh connection (STYLE.md "Errors" 3).
RETRYABLE: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)
# Errors that are about the rows, not the database: the same rows fail again on any connection,
# so the batch is split to find them (SQLSTATE classes 22 "data exception" and 23 "integrity
# constraint violation", PostgreSQL docs appendix A). ProgrammingError (class 42: a missing table,
# a syntax error) is a deployment fault for every row alike and stops the service instead.
REJECTED: tuple[type[Exception], ...] = (psycopg.DataError, psycopg.IntegrityError)
_MS = "timestamptz 'epoch' + {} * interval '1 millisecond'"
# A dead letter keeps the first 4 KiB of its payload (enough to read any field of a valid
# 16 KiB message's header) plus its size and SHA-256, never the whole body (migration 009).
DEAD_LETTER_KEEP_BYTES = 4096
# How long making partitions ahead (BatchWriter.prepare_weeks) waits for a table a reader holds
# before leaving it for the next hour: short beside a batch's budget, long beside a query.
AHEAD_LOCK_TIMEOUT_MS = 2000


def connect(
    url: str,
    *,
    autocommit: bool = False,
    statement_timeout_ms: int = pg.DEFAULT_STATEMENT_TIMEOUT_MS,
) -> Conn:
    """Open a connection with ingest.pg's timeouts; no server-side prepared statements
    (poolers and pglite share sessions).

    Args:
        url: the DATABASE_URL.
        autocommit: autocommit mode.
        statement_timeout_ms: server-side statement timeout (0: none, for migrations).
    """
    conn = pg.connect(
        url,
        autocommit=autocommit,
        statement_timeout_ms=statement_timeout_ms,
        application_name="eldercare-ingest",
    )
    conn.prepare_threshold = None
    return conn


def to_float4(value: float | None) -> float | None:
    """`value` rounded to the nearest IEEE float4, as a `real` column stores it.

    PostgreSQL refuses a float8 -> real cast that underflows to zero (`1e-50` gives "value out
    of range: underflow"), while binary COPY rounds it; rounding here gives both write methods
    the same stored value. Callers have already rejected values beyond the float4 range.
    """
    if value is None:
        return None
    return float(struct.unpack("f", struct.pack("f", value))[0])


@dataclass(frozen=True, slots=True)
class Column:
    """One stored column: its name, the staging/unnest type and how to read it from a row."""

    name: str
    pg_type: str
    get: Callable[[Row], Any]


def _window(row: Row) -> tuple[tuple[float, float, float], ...]:
    window = row.message
    assert isinstance(window, CaneTelemetry)
    return window.accel_g


def _peak(row: Row) -> float:
    """The window's largest sample magnitude, g (`ingest.batch.window_peak_g`, set by
    `Batch.add`)."""
    assert row.peak_g is not None
    return row.peak_g


def _flat(samples: Sequence[Sequence[float]]) -> list[float]:
    return [c for sample in samples for c in sample]


# PostgreSQL's binary array format (src/backend/utils/adt/arrayfuncs.c, array_send): ndim, a
# has-nulls flag, the element type oid, then per dimension its length and lower bound; then per
# element its byte length and its bytes (float4send: IEEE 754 single, network byte order).
_ARRAY_HEAD = struct.Struct("!iiIii")
_FLOAT4_OID = 700
_FLOAT4_ARRAY_OID = 1021
_ELEMENT = np.dtype([("len", ">i4"), ("value", ">f4")])


class Float4WindowDumper(Dumper):
    """Binary `real[]` from a cane window's samples `((x, y, z), ...)`, flattened x0, y0, z0, x1...

    The same bytes as psycopg's list dumper gives the flattened list (float8 -> float4 rounds
    to nearest, as `struct.pack("!f")` does), built by numpy in one pass instead of one Python
    call per sample: for 100-sample windows the list dumper was the largest single cost of a
    batch (docs/scaling.md "Ingest profile"). Values beyond the float4 range never get here
    (`ingest.batch.check_storable`).
    """

    format = pq.Format.BINARY
    oid = _FLOAT4_ARRAY_OID

    def dump(self, obj: Any) -> bytes:
        """The array_send bytes of the flattened samples (a 1-D array, lower bound 1)."""
        values = np.fromiter(chain.from_iterable(obj), np.float64, 3 * len(obj))
        out = np.empty(values.size, dtype=_ELEMENT)
        out["len"] = 4
        out["value"] = values
        return _ARRAY_HEAD.pack(1, 0, _FLOAT4_OID, values.size, 1) + out.tobytes()


def _field(name: str) -> Callable[[Row], Any]:
    return lambda row: getattr(row.message, name)


def _common(*extra: Column) -> tuple[Column, ...]:
    return (
        Column("ts_ms", "bigint", lambda row: row.time_ms),
        Column("device_id", "text", _field("device_id")),
        Column("seq", "bigint", _field("seq")),
        Column("battery_pct", "real", _field("battery_pct")),
        *extra,
        Column("received_ms", "bigint", lambda row: row.received_ms),
    )


COLUMNS: dict[Kind, tuple[Column, ...]] = {
    Kind.SMOKE: _common(
        Column("smoke_db_m", "real", _field("smoke_db_m")),
        Column("temp_c", "real", _field("temp_c")),
    ),
    Kind.BAND: _common(
        Column("lat", "double precision", _field("lat")),
        Column("lon", "double precision", _field("lon")),
        Column("hacc_m", "real", _field("hacc_m")),
        Column("hr_bpm", "integer", _field("hr_bpm")),
        Column("steps", "integer", _field("steps")),
        Column("worn", "boolean", _field("worn")),
    ),
    Kind.CANE: _common(
        Column("rate_hz", "smallint", _field("rate_hz")),
        Column("accel_g", "real[]", _window),
        Column("peak_g", "real", _peak),
        Column("lat", "double precision", _field("lat")),
        Column("lon", "double precision", _field("lon")),
        Column("hacc_m", "real", _field("hacc_m")),
        Column("hr_bpm", "integer", _field("hr_bpm")),
    ),
    Kind.EVENT: _common(
        Column("type", "text", lambda row: row.message.type.value),
        Column("event", "text", _field("event")),
    ),
    Kind.STATUS: (
        Column("ts_ms", "bigint", lambda row: row.time_ms),
        Column("device_id", "text", _field("device_id")),
        Column("online", "boolean", _field("online")),
        Column("has_ts", "boolean", lambda row: row.message.ts is not None),
        Column("heartbeat_s", "integer", _field("heartbeat_s")),
        Column("battery_pct", "real", _field("battery_pct")),
        Column("rssi_dbm", "real", _field("rssi_dbm")),
        Column("fw", "text", _field("fw")),
        Column("received_ms", "bigint", lambda row: row.received_ms),
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
    return "{" + ",".join(repr(to_float4(v)) for v in values) + "}"


def _unnest_values(col: Column, rows: list[Row]) -> list[Any]:
    values = [col.get(row) for row in rows]
    if col.pg_type == "real[]":
        return [_array_literal(_flat(v)) for v in values]
    if col.pg_type == "real":
        return [to_float4(v) for v in values]
    return values


_MISDATED_SQL = (
    "INSERT INTO misdated_messages (device_id, kind, device_ts, seq, online, body, received_at)"
    f" SELECT d, k, t, s, o, b, {_MS.format('r')}"
    " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::boolean[],"
    " %s::jsonb[], %s::bigint[]) AS u (d, k, t, s, o, b, r)"
    " ON CONFLICT DO NOTHING"
)
_ANCHOR_SQL = (
    "SELECT device_id, (extract(epoch FROM last_seen_at) * 1000)::bigint"
    " FROM device_last_seen WHERE device_id = ANY(%s::text[])"
)
_DEAD_SQL = (
    "INSERT INTO dead_letters (received_at, topic, payload, reason, detail, payload_size,"
    " payload_sha256)"
    f" SELECT {_MS.format('r')}, t, p, c, d, n, h"
    " FROM unnest(%s::bigint[], %s::text[], %s::bytea[], %s::text[], %s::text[],"
    " %s::integer[], %s::bytea[]) AS u (r, t, p, c, d, n, h)"
)
_LAST_SEEN_SQL = (
    "INSERT INTO device_last_seen AS s (device_id, last_seen_at, last_ts, online, status_at,"
    " heartbeat_s, battery_pct, battery_ts)"
    f" SELECT d, coalesce({_MS.format('ls')}, x.last_seen_at), lt, o, {_MS.format('sa')}, hb,"
    " bp, bt FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::boolean[], %s::bigint[],"
    " %s::integer[], %s::real[], %s::bigint[]) AS u (d, ls, lt, o, sa, hb, bp, bt)"
    # A Will alone says nothing about traffic: it updates a known device, never creates one.
    " LEFT JOIN device_last_seen AS x ON x.device_id = u.d"
    " WHERE u.ls IS NOT NULL OR x.device_id IS NOT NULL"
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
    misdated: int = 0


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
        if batch.will_devices():
            _anchor_wills(conn, batch)
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
            if batch.misdated:
                result.misdated = _write_misdated(conn, batch)
            if batch.dead:
                _write_dead(conn, batch)
                result.dead.update(d.reason.value for d in batch.dead)
            if batch.last_seen:
                # One lock order for every writer, so concurrent consumers cannot deadlock here.
                _write_last_seen(conn, sorted(batch.last_seen.values(), key=lambda s: s.device_id))

    def forget_connection(self) -> None:
        """Drop per-connection state (temp tables) after a reconnect."""
        self._staged.clear()

    def _insert(self, conn: Conn, kind: Kind, rows: list[Row]) -> int:
        cols = COLUMNS[kind]
        if self.method is WriteMethod.UNNEST:
            arrays = [_unnest_values(c, rows) for c in cols]
            cur = conn.execute(_unnest_insert_sql(kind), arrays)
            return cur.rowcount
        stage = f"stage_{kind.value}"
        self._stage(conn, kind, stage)
        with conn.cursor() as cur:
            # Only on this cursor: `real[]` columns of this COPY come from cane windows.
            cur.adapters.register_dumper(None, Float4WindowDumper)
            copy_sql = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(sql.Identifier(stage))
            with cur.copy(copy_sql) as copy:
                copy.set_types([c.pg_type for c in cols])
                getters = [c.get for c in cols]
                for row in rows:
                    copy.write_row([g(row) for g in getters])
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

    def prepare_weeks(
        self, conn: Conn, now_ms: int, lock_timeout_ms: int = AHEAD_LOCK_TIMEOUT_MS
    ) -> None:
        """Make sure every series has its partitions of this week and the next (plain
        PostgreSQL; TimescaleDB makes its chunks itself).

        Called at start and hourly, so the write path meets partition DDL, which locks the
        parent table, only for messages dated outside those two weeks (a replayed buffer, a
        clock far off) instead of on the first batch of each week. A series whose table is
        held longer than `lock_timeout_ms` by a reader (a backup, a long query) is left for
        the next call: the loop does not wait for it.

        Raises:
            psycopg.Error: as `write`, except a lock timeout.
        """
        if self.mode is not StorageMode.POSTGRESQL:
            return
        this_week = week_start_ms(now_ms)
        weeks = {this_week, this_week + MS_PER_WEEK}
        for kind in Kind:
            missing = {w for w in weeks if (kind, w) not in self._weeks}
            try:
                self._ensure_weeks(conn, {kind: missing}, lock_timeout_ms)
            except psycopg.errors.LockNotAvailable:
                logger.info("partitions of %s not made ahead: the table is in use", kind.value)

    def _ensure_partitions(self, conn: Conn, batch: Batch) -> None:
        wanted: dict[Kind, set[int]] = {}
        for kind, rows in batch.rows.items():
            for row in rows:
                week = week_start_ms(row.time_ms)
                if (kind, week) not in self._weeks:
                    wanted.setdefault(kind, set()).add(week)
        self._ensure_weeks(conn, wanted)

    def _ensure_weeks(
        self, conn: Conn, wanted: dict[Kind, set[int]], lock_timeout_ms: int | None = None
    ) -> None:
        # One transaction per parent table: creating a partition locks its parent exclusively
        # until commit, so holding two parents at once deadlocks with any reader that reads
        # them in the other order (a UNION over the series, a dashboard query).
        for kind, weeks in wanted.items():
            if not weeks:
                continue
            with conn.transaction():
                if lock_timeout_ms is not None:
                    conn.execute(
                        "SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_ms}ms",)
                    )
                conn.execute(
                    "SELECT ensure_week_partitions(%s::regclass,"
                    f" ARRAY(SELECT {_MS.format('w')} FROM unnest(%s::bigint[]) AS u (w)))",
                    (kind.value, sorted(weeks)),
                )
            self._weeks.update((kind, w) for w in weeks)


def _anchor_wills(conn: Conn, batch: Batch) -> None:
    with conn.transaction():
        rows = conn.execute(_ANCHOR_SQL, (sorted(batch.will_devices()),)).fetchall()
    batch.anchor_wills({str(d): int(ms) for d, ms in rows})


def _write_misdated(conn: Conn, batch: Batch) -> int:
    rows = [(kind, row) for kind, row in batch.misdated]
    cur = conn.execute(
        _MISDATED_SQL,
        (
            [r.message.device_id for _, r in rows],
            [k.value for k, _ in rows],
            [r.message.ts for _, r in rows],
            [getattr(r.message, "seq", None) for _, r in rows],
            [getattr(r.message, "online", None) for _, r in rows],
            [json.dumps(to_wire(r.message), allow_nan=False) for _, r in rows],
            [r.received_ms for _, r in rows],
        ),
    )
    return cur.rowcount


def _write_dead(conn: Conn, batch: Batch) -> None:
    dead = batch.dead
    conn.execute(
        _DEAD_SQL,
        (
            [d.received_ms for d in dead],
            [d.topic[:DEAD_LETTER_KEEP_BYTES] for d in dead],
            [d.payload[:DEAD_LETTER_KEEP_BYTES] for d in dead],
            [d.reason.value for d in dead],
            [d.detail for d in dead],
            [len(d.payload) for d in dead],
            [hashlib.sha256(d.payload).digest() for d in dead],
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
            [to_float4(s.battery_pct) for s in seen],
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


def misdated_count(conn: Conn) -> int:
    """Messages kept in `misdated_messages` (device ts implausibly old), for `db stats`."""
    row = conn.execute("SELECT count(*) FROM misdated_messages").fetchone()
    return int(row[0]) if row else 0
