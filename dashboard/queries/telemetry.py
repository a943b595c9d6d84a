"""SQL of device telemetry: server-side time buckets and raw windows around an alert.

All times here are device time (`ts` of contract §1, the `time` column), in ms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from ingest.migrate import StorageMode

Conn = psycopg.Connection[Any]
Point = dict[str, float | int | None]

# time_bucket's default origin (Monday 2000-01-03 UTC) given to date_bin too, so both storage
# modes cut the same buckets (TimescaleDB docs, time_bucket "origin").
_ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"

# Per device type: the table and the aggregates of one bucket (`n` rows in it).
_AGGREGATES = {
    "band": (
        "band_telemetry",
        "count(*) AS n, avg(hr_bpm)::float8 AS hr_bpm, coalesce(sum(steps), 0) AS steps,"
        " avg(lat) AS lat, avg(lon) AS lon, avg(hacc_m)::float8 AS hacc_m,"
        " min(battery_pct)::float8 AS battery_pct",
    ),
    "cane": (
        "cane_telemetry",
        "count(*) AS n, avg(hr_bpm)::float8 AS hr_bpm,"
        " max((SELECT max(sqrt(accel_g[i] ^ 2 + accel_g[i + 1] ^ 2 + accel_g[i + 2] ^ 2))"
        "  FROM generate_series(1, array_length(accel_g, 1) - 2, 3) AS i))::float8 AS peak_g,"
        " min(battery_pct)::float8 AS battery_pct",
    ),
    "smoke": (
        "smoke_telemetry",
        "count(*) AS n, max(smoke_db_m)::float8 AS smoke_db_m, max(temp_c)::float8 AS temp_c,"
        " min(battery_pct)::float8 AS battery_pct",
    ),
    "button": ("device_events", "count(*) AS n, min(battery_pct)::float8 AS battery_pct"),
}


def bucket_sql(mode: StorageMode) -> str:
    """The bucketing expression of `time` by the `%(bucket)s` interval in this storage mode."""
    if mode is StorageMode.TIMESCALEDB:
        return f"time_bucket(%(bucket)s::interval, time, origin => {_ORIGIN})"
    return f"date_bin(%(bucket)s::interval, time, {_ORIGIN})"


def bucketed(
    conn: Conn,
    mode: StorageMode,
    device_id: str,
    device_type: str,
    since_ms: int,
    until_ms: int,
    bucket_s: int,
) -> list[Point]:
    """One point per non-empty bucket of the device's series in [since_ms, until_ms).

    Returns:
        Points oldest first: `ts` (bucket start, ms) and the type's aggregates.
    """
    table, aggregates = _AGGREGATES[device_type]
    cur = conn.execute(
        f"SELECT (extract(epoch FROM {bucket_sql(mode)}) * 1000)::bigint AS ts, {aggregates}"
        f" FROM {table} WHERE device_id = %(id)s AND time >= to_timestamp(%(since)s / 1000.0)"
        " AND time < to_timestamp(%(until)s / 1000.0) GROUP BY 1 ORDER BY 1",
        {
            "bucket": timedelta(seconds=bucket_s),
            "id": device_id,
            "since": since_ms,
            "until": until_ms,
        },
    )
    names = [c.name for c in cur.description or ()]
    return [_point(names, row) for row in cur.fetchall()]


def _point(names: Sequence[str], row: Sequence[Any]) -> Point:
    out: Point = {}
    for name, value in zip(names, row, strict=True):
        out[name] = value if value is None or isinstance(value, int | float) else float(value)
    return out


def _ms_range(since_ms: int, until_ms: int) -> dict[str, int]:
    return {"since": since_ms, "until": until_ms}


_RANGE = "time >= to_timestamp(%(since)s / 1000.0) AND time <= to_timestamp(%(until)s / 1000.0)"
_TS = "(extract(epoch FROM time) * 1000)::bigint"


@dataclass(frozen=True, slots=True)
class AccelWindow:
    """One stored cane window: last sample at `end_ms`, samples oldest first."""

    end_ms: int
    rate_hz: int
    accel_g: tuple[float, ...]  # x0, y0, z0, x1, ...


def magnitudes(windows: Sequence[AccelWindow], since_ms: int, until_ms: int) -> list[Point]:
    """Accelerometer magnitude samples `{"ts", "g"}` in [since_ms, until_ms], oldest first.

    Sample i of n in a window is taken at `end_ms - (n - 1 - i) * 1000 / rate_hz` (contract
    §1: the last sample at `ts`); overlapping windows give each timestamp once.
    """
    seen: dict[int, float] = {}
    for w in windows:
        n = len(w.accel_g) // 3
        for i in range(n):
            ts = w.end_ms - round((n - 1 - i) * 1000 / w.rate_hz)
            if since_ms <= ts <= until_ms:
                x, y, z = w.accel_g[3 * i : 3 * i + 3]
                seen.setdefault(ts, math.sqrt(x * x + y * y + z * z))
    return [{"ts": ts, "g": round(g, 4)} for ts, g in sorted(seen.items())]


def accel_window(conn: Conn, device_id: str, since_ms: int, until_ms: int) -> list[Point]:
    """Magnitude samples of a cane in [since_ms, until_ms] (windows ending up to 60 s later)."""
    rows = conn.execute(
        f"SELECT {_TS}, rate_hz, accel_g FROM cane_telemetry WHERE device_id = %(id)s"
        " AND time >= to_timestamp(%(since)s / 1000.0)"
        " AND time <= to_timestamp(%(until)s / 1000.0 + 60) ORDER BY time, seq",
        {"id": device_id, **_ms_range(since_ms, until_ms)},
    ).fetchall()
    windows = [AccelWindow(int(t), int(r), tuple(float(v) for v in a)) for t, r, a in rows]
    return magnitudes(windows, since_ms, until_ms)


def gps_track(conn: Conn, device_id: str, since_ms: int, until_ms: int, limit: int) -> list[Point]:
    """Fixes `{"ts", "lat", "lon", "hacc_m"}` of a band or cane, oldest first."""
    rows = conn.execute(
        f"SELECT {_TS}, lat, lon, hacc_m::float8 FROM band_telemetry"
        f" WHERE device_id = %(id)s AND {_RANGE}"
        f" UNION ALL SELECT {_TS}, lat, lon, hacc_m::float8 FROM cane_telemetry"
        f" WHERE device_id = %(id)s AND lat IS NOT NULL AND {_RANGE}"
        " ORDER BY 1 LIMIT %(limit)s",
        {"id": device_id, "limit": limit, **_ms_range(since_ms, until_ms)},
    ).fetchall()
    return [{"ts": int(t), "lat": la, "lon": lo, "hacc_m": h} for t, la, lo, h in rows]


def smoke_curve(
    conn: Conn, device_id: str, since_ms: int, until_ms: int, limit: int
) -> list[Point]:
    """Readings `{"ts", "smoke_db_m", "temp_c"}` of a smoke sensor, oldest first."""
    rows = conn.execute(
        f"SELECT {_TS}, smoke_db_m::float8, temp_c::float8 FROM smoke_telemetry"
        f" WHERE device_id = %(id)s AND {_RANGE} ORDER BY time, seq LIMIT %(limit)s",
        {"id": device_id, "limit": limit, **_ms_range(since_ms, until_ms)},
    ).fetchall()
    return [{"ts": int(t), "smoke_db_m": s, "temp_c": c} for t, s, c in rows]


def vitals(conn: Conn, elder_id: str, since_ms: int, until_ms: int, limit: int) -> list[Point]:
    """Points `{"ts", "hr_bpm", "lat", "lon"}` of the elder's bands and canes, oldest first."""
    rows = conn.execute(
        f"SELECT {_TS}, hr_bpm, lat, lon FROM band_telemetry"
        " WHERE device_id = ANY(%(ids)s::text[]) AND " + _RANGE + " UNION ALL"
        f" SELECT {_TS}, hr_bpm, lat, lon FROM cane_telemetry"
        " WHERE device_id = ANY(%(ids)s::text[]) AND " + _RANGE + " ORDER BY 1 LIMIT %(limit)s",
        {
            "ids": _worn_devices(conn, elder_id),
            "limit": limit,
            **_ms_range(since_ms, until_ms),
        },
    ).fetchall()
    return [{"ts": int(t), "hr_bpm": h, "lat": la, "lon": lo} for t, h, la, lo in rows]


def _worn_devices(conn: Conn, elder_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT id FROM devices WHERE elder_id = %s AND type IN ('band', 'cane')", (elder_id,)
    ).fetchall()
    return [str(r[0]) for r in rows]


def device_events(
    conn: Conn, device_id: str, since_ms: int, until_ms: int, limit: int
) -> list[dict[str, Any]]:
    """Events `{"ts", "event"}` of a device, oldest first."""
    rows = conn.execute(
        f"SELECT {_TS}, event FROM device_events WHERE device_id = %(id)s AND {_RANGE}"
        " ORDER BY time, seq LIMIT %(limit)s",
        {"id": device_id, "limit": limit, **_ms_range(since_ms, until_ms)},
    ).fetchall()
    return [{"ts": int(t), "event": str(e)} for t, e in rows]


@dataclass(frozen=True, slots=True)
class AlertRef:
    """What the raw window around an alert needs to know of it."""

    alert_id: str
    kind: str
    elder_id: str
    device_id: str
    device_type: str | None  # None when the device left the registry
    event_ts: int  # device ms


def alert_ref(conn: Conn, alert_id: str) -> AlertRef | None:
    """The alert's kind, elder, device and trigger time, or None when unknown."""
    row = conn.execute(
        "SELECT a.alert_id, a.kind, a.elder_id, a.device_id, d.type, a.event_ts FROM alerts AS a"
        " LEFT JOIN devices AS d ON d.id = a.device_id WHERE a.alert_id = %s",
        (alert_id,),
    ).fetchone()
    if row is None:
        return None
    return AlertRef(str(row[0]), str(row[1]), str(row[2]), str(row[3]), row[4], int(row[5]))
