"""SQL of device views: registry row, liveness, battery and last position."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from dashboard.queries.notify import open_alert_elders
from gateway.contract import OFFLINE_HEARTBEATS

Conn = psycopg.Connection[Any]

# Liveness per contract §1: a device is offline after its Last Will (`online` false) or when
# nothing arrived for OFFLINE_HEARTBEATS x its heartbeat. The last position is the newest fix
# of a band, or of a cane that carried one; both tables are keyed (device_id, time, seq).
_DEVICES = """
SELECT d.id, d.type, d.elder_id, d.heartbeat_s,
       s.online IS NOT FALSE AND s.last_seen_at IS NOT NULL
           AND s.last_seen_at > now() - make_interval(
               secs => %(k)s * coalesce(s.heartbeat_s, d.heartbeat_s)) AS online,
       s.battery_pct,
       (extract(epoch FROM s.last_seen_at) * 1000)::bigint AS last_seen_ts,
       p.lat, p.lon, (extract(epoch FROM p.time) * 1000)::bigint AS position_ts
FROM devices AS d
LEFT JOIN device_last_seen AS s ON s.device_id = d.id
LEFT JOIN LATERAL (
    SELECT time, lat, lon FROM band_telemetry AS b
    WHERE d.type = 'band' AND b.device_id = d.id
    UNION ALL
    SELECT time, lat, lon FROM cane_telemetry AS c
    WHERE d.type = 'cane' AND c.device_id = d.id AND c.lat IS NOT NULL
    ORDER BY time DESC LIMIT 1
) AS p ON true
"""


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A device with its live state (times in platform ms except `position_ts`, device ms)."""

    id: str
    type: str
    elder_id: str
    heartbeat_s: int
    online: bool
    battery_pct: float | None
    last_seen_ts: int | None
    lat: float | None
    lon: float | None
    position_ts: int | None


def _view(row: Sequence[Any]) -> DeviceView:
    i, t, e, hb, online, batt, seen, lat, lon, pos_ts = row
    return DeviceView(
        str(i),
        str(t),
        str(e),
        int(hb),
        bool(online),
        None if batt is None else float(batt),
        None if seen is None else int(seen),
        None if lat is None else float(lat),
        None if lon is None else float(lon),
        None if pos_ts is None else int(pos_ts),
    )


def get_device(conn: Conn, device_id: str) -> DeviceView | None:
    """One device with its live state, or None when unknown."""
    row = conn.execute(
        _DEVICES + " WHERE d.id = %(id)s", {"k": OFFLINE_HEARTBEATS, "id": device_id}
    ).fetchone()
    return None if row is None else _view(row)


def devices_of_elders(conn: Conn, elder_ids: Sequence[str]) -> list[DeviceView]:
    """Every device of these elders, by elder then device id."""
    rows = conn.execute(
        _DEVICES + " WHERE d.elder_id = ANY(%(ids)s::text[]) ORDER BY d.elder_id, d.id",
        {"k": OFFLINE_HEARTBEATS, "ids": list(elder_ids)},
    ).fetchall()
    return [_view(r) for r in rows]


def without_position(view: DeviceView) -> DeviceView:
    """The device without its last position (lat, lon and position_ts null)."""
    return replace(view, lat=None, lon=None, position_ts=None)


def for_family(conn: Conn, views: Iterable[DeviceView]) -> list[DeviceView]:
    """The devices as a family account sees them: an elder's position only while an alert of
    that elder is active (the rule of the family page, `open_alert_elders`)."""
    views = list(views)
    active = open_alert_elders(conn, sorted({v.elder_id for v in views})) if views else set()
    return [v if v.elder_id in active else without_position(v) for v in views]


def family_sees_position(conn: Conn, elder_id: str) -> bool:
    """Whether a family account may see the elder's position now (an active alert)."""
    return elder_id in open_alert_elders(conn, [elder_id])


def devices_seen(conn: Conn, elder_ids: Sequence[str], *, family: bool) -> list[DeviceView]:
    """Every device of these elders as the viewer sees it (`for_family` for a family account)."""
    views = devices_of_elders(conn, elder_ids)
    return for_family(conn, views) if family else views
