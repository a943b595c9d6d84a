"""SQL of elder views: the searchable list and the elder's card with key-holders and devices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from gateway import Elder
from ingest.registry import ELDER_COLUMNS, FAMILY_COLUMNS, elder_from_row, family_from_row

Conn = psycopg.Connection[Any]

ACTIVE_STATUSES = ("open", "acknowledged", "escalated")


@dataclass(frozen=True, slots=True)
class ElderSummary:
    """One row of the elder list."""

    id: str
    name: str
    address: str | None
    phone: str | None
    home_lat: float
    home_lon: float
    devices: int
    active_alerts: int


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_elders(
    conn: Conn, *, q: str | None, after_id: str | None, limit: int, only: Sequence[str] | None
) -> list[ElderSummary]:
    """Elders in id order after `after_id`, matching `q` in id, name, address or phone.

    Args:
        conn: A pooled connection.
        q: Case-insensitive substring; None or empty matches all.
        after_id: Keyset cursor (the last id of the previous page).
        limit: Page size.
        only: The elder ids the caller may see; None for all.
    """
    rows = conn.execute(
        "SELECT e.id, e.name, e.address, e.phone, e.home_lat, e.home_lon,"
        " (SELECT count(*) FROM devices AS d WHERE d.elder_id = e.id),"
        " (SELECT count(*) FROM alerts AS a WHERE a.elder_id = e.id"
        "  AND a.status = ANY(%(active)s::text[]))"
        " FROM elders AS e"
        " WHERE (%(after)s::text IS NULL OR e.id > %(after)s)"
        " AND (%(only)s::text[] IS NULL OR e.id = ANY(%(only)s::text[]))"
        " AND (%(q)s::text IS NULL OR e.id ILIKE %(q)s OR e.name ILIKE %(q)s"
        "  OR e.address ILIKE %(q)s OR e.phone ILIKE %(q)s)"
        " ORDER BY e.id LIMIT %(limit)s",
        {
            "active": list(ACTIVE_STATUSES),
            "after": after_id,
            "only": None if only is None else list(only),
            "q": _like(q) if q else None,
            "limit": limit,
        },
    ).fetchall()
    return [
        ElderSummary(str(i), str(n), a, p, float(la), float(lo), int(nd), int(na))
        for i, n, a, p, la, lo, nd, na in rows
    ]


def get_elder(conn: Conn, elder_id: str) -> Elder | None:
    """One elder with linked families and responder fields, or None when unknown."""
    row = conn.execute(f"SELECT {ELDER_COLUMNS} FROM elders WHERE id = %s", (elder_id,)).fetchone()
    if row is None:
        return None
    fams = conn.execute(
        f"SELECT {FAMILY_COLUMNS} FROM elder_families AS l JOIN families AS f"
        " ON f.id = l.family_id WHERE l.elder_id = %s ORDER BY l.key_holder DESC, f.id",
        (elder_id,),
    ).fetchall()
    return elder_from_row(row, tuple(family_from_row(f) for f in fams))


def holds_taken_alert(conn: Conn, elder_id: str, username: str) -> bool:
    """Whether `username` holds a taken, still active alert of this elder."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM alerts WHERE elder_id = %s AND taken_by = %s"
        " AND status = ANY(%s::text[]))",
        (elder_id, username, list(ACTIVE_STATUSES)),
    ).fetchone()
    return bool(row and row[0])
