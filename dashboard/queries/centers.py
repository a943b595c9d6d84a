"""SQL of care centres: coverage, open load and the on-duty switch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from alerting.dispatch_cli import DUTY_CHANNEL
from gateway import CareCenter

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class CenterView:
    """A centre with its duty flag and the alerts it works now."""

    center: CareCenter
    on_duty: bool
    open_incidents: int


_CENTERS = (
    "SELECT c.id, c.name, c.lat, c.lon, c.capacity, c.coverage_km2, c.on_duty,"
    " (SELECT count(*) FROM alerts AS a WHERE a.center_id = c.id"
    "  AND a.status IN ('open', 'acknowledged', 'escalated'))"
    " FROM care_centers AS c"
)


def _view(row: tuple[Any, ...]) -> CenterView:
    i, n, la, lo, cap, cov, duty, load = row
    return CenterView(
        CareCenter(str(i), str(n), float(la), float(lo), int(cap), float(cov)),
        bool(duty),
        int(load),
    )


def list_centers(conn: Conn) -> list[CenterView]:
    """Every centre in id order."""
    return [_view(r) for r in conn.execute(_CENTERS + " ORDER BY c.id").fetchall()]


def set_duty(conn: Conn, center_id: str, on_duty: bool) -> CenterView | None:
    """Switch a centre on or off duty (in the caller's transaction); None when unknown.

    The alerting service reloads centres on a timer; the notification (delivered at commit)
    lets it re-route at once, as `eldercare centre duty` does.
    """
    found = conn.execute(
        "UPDATE care_centers SET on_duty = %s, updated_at = now() WHERE id = %s RETURNING id",
        (on_duty, center_id),
    ).fetchone()
    if found is None:
        return None
    conn.execute("SELECT pg_notify(%s, %s)", (DUTY_CHANNEL, center_id))
    row = conn.execute(_CENTERS + " WHERE c.id = %s", (center_id,)).fetchone()
    return None if row is None else _view(row)
