"""Telemetry rows written straight into a test schema (as ingest stores them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg


def ensure_partitions(conn: psycopg.Connection[Any], table: str, times_ms: Sequence[int]) -> None:
    """Create the weekly partitions of `table` on plain PostgreSQL (no-op on TimescaleDB)."""
    exists = conn.execute("SELECT to_regproc('ensure_week_partitions') IS NOT NULL").fetchone()
    if exists and exists[0]:
        conn.execute(
            "SELECT ensure_week_partitions(%s::regclass,"
            " ARRAY(SELECT to_timestamp(t / 1000.0) FROM unnest(%s::bigint[]) AS t))",
            (table, list(times_ms)),
        )


def add_band(
    conn: psycopg.Connection[Any],
    device_id: str,
    rows: Sequence[tuple[int, float, float, int | None, int | None]],
) -> None:
    """Band fixes `(ts_ms, lat, lon, hr_bpm, steps)`, hacc 10 m, battery 80 %."""
    ensure_partitions(conn, "band_telemetry", [r[0] for r in rows])
    for seq, (ts, lat, lon, hr, steps) in enumerate(rows):
        conn.execute(
            "INSERT INTO band_telemetry (time, device_id, seq, battery_pct, lat, lon, hacc_m,"
            " hr_bpm, steps, received_at) VALUES (to_timestamp(%s / 1000.0), %s, %s, 80, %s, %s,"
            " 10, %s, %s, now())",
            (ts, device_id, seq, lat, lon, hr, steps),
        )


def add_cane(
    conn: psycopg.Connection[Any], device_id: str, end_ms: int, rate_hz: int, accel: list[float]
) -> None:
    """One cane window ending at `end_ms` (flat x, y, z samples)."""
    ensure_partitions(conn, "cane_telemetry", [end_ms])
    conn.execute(
        "INSERT INTO cane_telemetry (time, device_id, seq, rate_hz, accel_g, received_at)"
        " VALUES (to_timestamp(%s / 1000.0), %s, %s, %s, %s, now())",
        (end_ms, device_id, end_ms, rate_hz, accel),
    )


def add_smoke(
    conn: psycopg.Connection[Any], device_id: str, rows: Sequence[tuple[int, float, float]]
) -> None:
    """Smoke readings `(ts_ms, smoke_db_m, temp_c)`."""
    ensure_partitions(conn, "smoke_telemetry", [r[0] for r in rows])
    for seq, (ts, smoke, temp) in enumerate(rows):
        conn.execute(
            "INSERT INTO smoke_telemetry (time, device_id, seq, smoke_db_m, temp_c, received_at)"
            " VALUES (to_timestamp(%s / 1000.0), %s, %s, %s, %s, now())",
            (ts, device_id, seq, smoke, temp),
        )
