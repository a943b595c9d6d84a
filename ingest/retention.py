"""Retention: old time series and diagnostic rows leave the database (`eldercare db retention`).

Plain mode drops whole weekly partitions older than each series' kept days
(`retention_settings`, migration 010); TimescaleDB mode leaves the series to its own
retention policies (002). In both modes dead letters and misdated messages older than their
kept days are deleted in batches, so one run never holds a long lock. Run it once a day
(cron, a systemd timer or the compose `retention` service).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from ingest.migrate import StorageMode, recorded_mode

logger = logging.getLogger(__name__)

SERIES = ("smoke_telemetry", "band_telemetry", "cane_telemetry", "device_events", "device_status")
# Deleted by receive time rather than dropped: neither table is partitioned.
DIAGNOSTIC = ("dead_letters", "misdated_messages")
# Rows per DELETE: short transactions beside the live writers.
DELETE_BATCH = 10_000
DAY_MS = 86_400_000


@dataclass
class RetentionResult:
    """What one run removed: partitions dropped per series, rows deleted per table."""

    dropped: dict[str, list[str]] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)


def keep_days(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Kept days per table, from `retention_settings`."""
    return {str(t): int(d) for t, d in conn.execute("SELECT * FROM retention_settings").fetchall()}


def cutoff_ms(now_ms: int, days: int) -> int:
    """The oldest receive or device time kept, in Unix ms."""
    return now_ms - days * DAY_MS


def _delete_older(conn: psycopg.Connection[Any], table: str, before_ms: int) -> int:
    query = sql.SQL(
        "DELETE FROM {t} WHERE ctid IN (SELECT ctid FROM {t}"
        " WHERE received_at < to_timestamp(%s / 1000.0) LIMIT %s)"
    ).format(t=sql.Identifier(table))
    total = 0
    while True:
        with conn.transaction():
            n = conn.execute(query, (before_ms, DELETE_BATCH)).rowcount
        total += n
        if n < DELETE_BATCH:
            return total


def apply_retention(conn: psycopg.Connection[Any], now_ms: int) -> RetentionResult:
    """Remove what is older than each table's kept days at platform time `now_ms`.

    The connection must be in autocommit mode (each step commits on its own).
    """
    days = keep_days(conn)
    result = RetentionResult()
    if recorded_mode(conn) is StorageMode.POSTGRESQL:
        for series in SERIES:
            if series not in days:
                continue
            with conn.transaction():
                rows = conn.execute(
                    "SELECT drop_partitions_before(%s::regclass, to_timestamp(%s / 1000.0))",
                    (series, cutoff_ms(now_ms, days[series])),
                ).fetchall()
            result.dropped[series] = [str(r[0]) for r in rows]
    for table in DIAGNOSTIC:
        if table in days:
            result.deleted[table] = _delete_older(conn, table, cutoff_ms(now_ms, days[table]))
    logger.info("retention: dropped %s, deleted %s", result.dropped, result.deleted)
    return result
