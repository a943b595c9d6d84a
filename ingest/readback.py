"""Reads of stored messages and aggregates, for services resuming from the database."""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from gateway.contract import DeviceType
from gateway.messages import BandTelemetry, CaneTelemetry, Event, Message, SmokeTelemetry, Status

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]


def _table_exists(conn: Conn, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def hourly_baselines(conn: Conn, since_ms: int) -> dict[str, list[float]]:
    """Per elder, mean steps per local (UTC+8) hour of day since `since_ms`, from ingest's view."""
    if not _table_exists(conn, "elder_activity_hourly"):
        conn.commit()
        return {}
    rows = conn.execute(
        "SELECT elder_id, extract(hour FROM bucket AT TIME ZONE 'Asia/Shanghai')::int AS h,"
        " avg(steps)::float8, count(DISTINCT date_trunc('day', bucket)) FROM elder_activity_hourly"
        " WHERE bucket >= to_timestamp(%s / 1000.0) GROUP BY elder_id, h",
        (since_ms,),
    ).fetchall()
    conn.commit()
    out: dict[str, list[float]] = {}
    days: dict[str, int] = {}
    for elder_id, hour, steps, n_days in rows:
        out.setdefault(str(elder_id), [0.0] * 24)[int(hour)] = float(steps or 0.0)
        days[str(elder_id)] = max(days.get(str(elder_id), 0), int(n_days))
    # A baseline needs a few days of history; younger elders use the fixed rule.
    return {e: v for e, v in out.items() if days.get(e, 0) >= 3}


def _ms(column: str) -> str:
    return f"(extract(epoch FROM {column}) * 1000)::bigint"


def _events(conn: Conn, types: dict[str, DeviceType], since_ms: int) -> list[tuple[int, Message]]:
    rows = conn.execute(
        f"SELECT {_ms('received_at')}, device_id, {_ms('time')}, seq, battery_pct, event"
        " FROM device_events WHERE received_at >= to_timestamp(%s / 1000.0)",
        (since_ms,),
    ).fetchall()
    return [
        (rec, Event(device_id=dev, type=types[dev], seq=seq, ts=ts, battery_pct=bat, event=ev))
        for rec, dev, ts, seq, bat, ev in rows
        if dev in types
    ]


def _smoke(conn: Conn, since_ms: int) -> list[tuple[int, Message]]:
    rows = conn.execute(
        f"SELECT {_ms('received_at')}, device_id, {_ms('time')}, seq, battery_pct, smoke_db_m,"
        " temp_c FROM smoke_telemetry WHERE received_at >= to_timestamp(%s / 1000.0)",
        (since_ms,),
    ).fetchall()
    return [
        (
            rec,
            SmokeTelemetry(
                device_id=dev,
                type=DeviceType.SMOKE,
                seq=seq,
                ts=ts,
                battery_pct=bat,
                smoke_db_m=db_m,
                temp_c=temp,
            ),
        )
        for rec, dev, ts, seq, bat, db_m, temp in rows
    ]


def _bands(conn: Conn, since_ms: int) -> list[tuple[int, Message]]:
    rows = conn.execute(
        f"SELECT {_ms('received_at')}, device_id, {_ms('time')}, seq, battery_pct, lat, lon,"
        " hacc_m, hr_bpm, steps, worn FROM band_telemetry"
        " WHERE received_at >= to_timestamp(%s / 1000.0)",
        (since_ms,),
    ).fetchall()
    return [
        (
            rec,
            BandTelemetry(
                device_id=dev,
                type=DeviceType.BAND,
                seq=seq,
                ts=ts,
                battery_pct=bat,
                lat=lat,
                lon=lon,
                hacc_m=hacc,
                hr_bpm=hr,
                steps=steps,
                worn=worn,
            ),
        )
        for rec, dev, ts, seq, bat, lat, lon, hacc, hr, steps, worn in rows
    ]


_CANE_COLS = (
    f"{_ms('received_at')}, device_id, {_ms('time')}, seq, battery_pct, rate_hz, accel_g, lat,"
    " lon, hacc_m, hr_bpm"
)


def _cane_rows(rows: list[Any]) -> list[tuple[int, Message]]:
    out: list[tuple[int, Message]] = []
    for rec, dev, ts, seq, bat, rate, accel, lat, lon, hacc, hr in rows:
        triples = tuple(
            (float(accel[i]), float(accel[i + 1]), float(accel[i + 2]))
            for i in range(0, len(accel) - 2, 3)
        )
        out.append(
            (
                rec,
                CaneTelemetry(
                    device_id=dev,
                    type=DeviceType.CANE,
                    seq=seq,
                    ts=ts,
                    battery_pct=bat,
                    rate_hz=rate,
                    accel_g=triples,
                    lat=lat,
                    lon=lon,
                    hacc_m=hacc,
                    hr_bpm=hr,
                ),
            )
        )
    return out


def _canes(conn: Conn, since_ms: int) -> list[tuple[int, Message]]:
    rows = conn.execute(
        f"SELECT {_CANE_COLS} FROM cane_telemetry WHERE received_at >= to_timestamp(%s / 1000.0)",
        (since_ms,),
    ).fetchall()
    return _cane_rows(rows)


# Windows stored with a peak from this level are indexed (migration 044_cane_peak).
INDEXED_PEAK_G = 1.5


def cane_impacts(
    conn: Conn, since_ms: int, until_ms: int, min_peak_g: float
) -> list[tuple[str, int]]:
    """Stored cane windows with a sample at or above `min_peak_g`, received in
    [`since_ms`, `until_ms`): (device_id, device ts ms), by device then ts.

    Reads the partial index of migration 044. Windows stored before ingest recorded peaks
    (`peak_g` NULL) are not among them.

    Raises:
        ValueError: `min_peak_g` below `INDEXED_PEAK_G` (the index would not hold them all).
    """
    if min_peak_g < INDEXED_PEAK_G:
        raise ValueError(f"min_peak_g must be >= {INDEXED_PEAK_G} g, got {min_peak_g}")
    rows = conn.execute(
        f"SELECT device_id, {_ms('time')} FROM cane_telemetry"
        " WHERE received_at >= to_timestamp(%s / 1000.0)"
        " AND received_at < to_timestamp(%s / 1000.0)"
        f" AND peak_g >= {INDEXED_PEAK_G!r}::real AND peak_g >= %s::real ORDER BY 1, 2",
        (since_ms, until_ms, min_peak_g),
    ).fetchall()
    conn.commit()
    return [(str(d), int(t)) for d, t in rows]


def cane_windows(
    conn: Conn,
    device_id: str,
    spans: list[tuple[int, int]],
    *,
    after: tuple[int, int] | None = None,
    limit: int | None = None,
) -> list[tuple[int, Message]]:
    """One cane's stored windows whose device ts lies in one of `spans` ([lo, hi] ms,
    inclusive, not overlapping), as (received ms, window), in (ts, seq) order.

    Args:
        after: only windows after this (ts, seq), for reading page by page.
        limit: at most this many windows.
    """
    if not spans:
        return []
    page = "" if after is None else " AND (c.time, c.seq) > (to_timestamp(%s / 1000.0), %s)"
    rows = conn.execute(
        f"SELECT {_CANE_COLS} FROM cane_telemetry c"
        " JOIN unnest(%s::bigint[], %s::bigint[]) AS s(lo, hi)"
        " ON c.time >= to_timestamp(s.lo / 1000.0) AND c.time <= to_timestamp(s.hi / 1000.0)"
        f" WHERE c.device_id = %s{page} ORDER BY c.time, c.seq LIMIT %s",
        ([lo for lo, _ in spans], [hi for _, hi in spans], device_id, *(after or ()), limit),
    ).fetchall()
    conn.commit()
    return _cane_rows(rows)


def _statuses(conn: Conn, types: dict[str, DeviceType], since_ms: int) -> list[tuple[int, Message]]:
    rows = conn.execute(
        f"SELECT {_ms('received_at')}, device_id, online, has_ts, {_ms('time')}, heartbeat_s,"
        " battery_pct FROM device_status WHERE received_at >= to_timestamp(%s / 1000.0)",
        (since_ms,),
    ).fetchall()
    return [
        (
            rec,
            Status(
                device_id=dev,
                type=types[dev],
                online=online,
                ts=ts if has_ts else None,
                heartbeat_s=hb,
                battery_pct=bat,
            ),
        )
        for rec, dev, online, has_ts, ts, hb, bat in rows
        if dev in types
    ]


def recent_messages(
    conn: Conn, types: dict[str, DeviceType], since_ms: int, cane_since_ms: int
) -> list[tuple[int, Message]]:
    """Stored messages received since `since_ms`, as (received ms, message), oldest first.

    Used to catch the detectors up after a restart. Missing tables (ingest not migrated)
    give nothing.
    """
    if not _table_exists(conn, "device_events"):
        conn.commit()
        return []
    out = _events(conn, types, since_ms) + _smoke(conn, since_ms) + _bands(conn, since_ms)
    out += _canes(conn, cane_since_ms) + _statuses(conn, types, since_ms)
    conn.commit()
    out.sort(key=lambda item: (item[0], item[1].ts or 0))
    return out


def last_seen(conn: Conn) -> dict[str, int]:
    """Device id -> platform ms of the newest stored message (ingest's device_last_seen)."""
    if not _table_exists(conn, "device_last_seen"):
        conn.commit()
        return {}
    rows = conn.execute(f"SELECT device_id, {_ms('last_seen_at')} FROM device_last_seen").fetchall()
    conn.commit()
    return {str(d): int(t) for d, t in rows}


def dead_letters(
    conn: Conn, *, reason: str | None = None, since_ms: int = 0, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest dead letters, newest first: receive time, topic, reason, detail, raw payload."""
    rows = conn.execute(
        f"SELECT id, {_ms('received_at')}, topic, reason, detail, payload FROM dead_letters"
        " WHERE received_at >= to_timestamp(%s / 1000.0) AND (%s::text IS NULL OR reason = %s)"
        " ORDER BY received_at DESC, id DESC LIMIT %s",
        (since_ms, reason, reason, limit),
    ).fetchall()
    conn.commit()
    return [
        {"id": i, "received_ms": ms, "topic": t, "reason": r, "detail": d, "payload": bytes(p)}
        for i, ms, t, r, d, p in rows
    ]


BandRow = tuple[str, int, int, float | None, float | None, bool | None]


def _band_rows(rows: list[Any]) -> list[BandRow]:
    return [(str(d), int(rec), int(ts), steps, hr, worn) for d, rec, ts, steps, hr, worn in rows]


_BAND_COLS = f"device_id, {_ms('received_at')}, {_ms('time')}, steps, hr_bpm, worn"


def band_movement(conn: Conn, since_ms: int, until_ms: int) -> list[BandRow]:
    """Band readings with a step count received in [`since_ms`, `until_ms`), for warm-up.

    Returns:
        (device_id, received ms, device ts ms, steps, hr_bpm, worn), oldest receipt first.
    """
    if not _table_exists(conn, "band_telemetry"):
        conn.commit()
        return []
    rows = conn.execute(
        f"SELECT {_BAND_COLS} FROM band_telemetry WHERE steps IS NOT NULL"
        " AND received_at >= to_timestamp(%s / 1000.0) AND received_at < to_timestamp(%s / 1000.0)"
        " ORDER BY received_at",
        (since_ms, until_ms),
    ).fetchall()
    conn.commit()
    return _band_rows(rows)


def band_heart_rates(
    conn: Conn, device_ids: list[str], since_ms: int, until_ms: int, per_device: int
) -> list[BandRow]:
    """The newest `per_device` worn heart-rate readings of each band, by device time in range.

    One index range scan per band on the primary key (device_id, time, seq), so the cost
    follows the number of readings returned, not the days of history kept.

    Returns:
        (device_id, received ms, device ts ms, steps, hr_bpm, worn), per band newest first.
    """
    if not device_ids or not _table_exists(conn, "band_telemetry"):
        conn.commit()
        return []
    rows = conn.execute(
        f"SELECT {_BAND_COLS} FROM unnest(%s::text[]) AS d (id), LATERAL ("
        " SELECT * FROM band_telemetry b WHERE b.device_id = d.id"
        " AND b.time >= to_timestamp(%s / 1000.0) AND b.time < to_timestamp(%s / 1000.0)"
        " AND b.hr_bpm IS NOT NULL AND b.worn IS NOT false"
        " ORDER BY b.time DESC LIMIT %s) AS r",
        (device_ids, since_ms, until_ms, per_device),
    ).fetchall()
    conn.commit()
    return _band_rows(rows)
