"""SQL of the live feed: alert transitions after an event id, with the alert's current state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from dashboard.models import FeedEvent, Transition
from dashboard.queries.alerts import ALERT_COLS, ALERT_FROM, alert_from_row

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One feed event: its id, whose it is (for visibility), and the message, serialised once."""

    event_id: int
    elder_id: str
    text: str


def head(conn: Conn) -> int:
    """The newest event id (0 when none)."""
    row = conn.execute("SELECT coalesce(max(id), 0) FROM alert_transitions").fetchone()
    return int(row[0]) if row else 0


def events_after(
    conn: Conn,
    after_id: int,
    limit: int,
    *,
    upto_id: int | None = None,
    elder_ids: Sequence[str] | None = None,
) -> list[FeedRow]:
    """Events with `after_id < id <= upto_id`, oldest first, of `elder_ids` when given.

    Ids are assigned in commit order (migration 030), so reading "after N" never skips an
    event that commits later.
    """
    where = ["t.id > %s"]
    params: list[Any] = [after_id]
    if upto_id is not None:
        where.append("t.id <= %s")
        params.append(upto_id)
    if elder_ids is not None:
        where.append("a.elder_id = ANY(%s)")
        params.append(list(elder_ids))
    rows = conn.execute(
        "SELECT t.id, t.at_ts, t.from_status, t.to_status, t.actor, t.note, "
        + ALERT_COLS
        + " FROM alert_transitions AS t JOIN "
        + ALERT_FROM
        + " ON a.alert_id = t.alert_id WHERE "
        + " AND ".join(where)
        + " ORDER BY t.id LIMIT %s",
        [*params, limit],
    ).fetchall()
    return [_row(r) for r in rows]


def _row(r: Sequence[Any]) -> FeedRow:
    alert = alert_from_row(r[6:])
    event = FeedEvent(
        event_id=r[0],
        alert=alert,
        transition=Transition(from_status=r[2], to_status=r[3], actor=r[4], note=r[5], at_ts=r[1]),
    )
    return FeedRow(int(r[0]), alert.elder_id, event.model_dump_json())
