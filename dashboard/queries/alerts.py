"""SQL of the alert views: list pages, the queue, one alert with its history and steps."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from alerting.lifecycle import ACTIVE
from dashboard.accounts import Role, User
from dashboard.models import Alert, HistoryEntry, StepEntry
from dashboard.ordering import QUEUE_ORDER_SQL

Conn = psycopg.Connection[Any]

ACTIVE_STATUSES = [s.value for s in ACTIVE]
# Spelled out so the planner matches the partial index `alerts_status` (migration 021) even
# under a generic plan, where `status = ANY($1)` would not prove the index predicate.
ACTIVE_SQL = "a.status IN (" + ", ".join(f"'{s}'" for s in ACTIVE_STATUSES) + ")"
# The Alert body, over `alerts AS a LEFT JOIN elders AS e`.
ALERT_COLS = (
    "a.alert_id, a.kind, a.severity, a.status, a.elder_id, a.device_id, a.center_id,"
    " a.distance_m, a.in_coverage, a.lat, a.lon, a.event_ts, a.raised_ts, a.updated_ts,"
    " a.reason, a.acked_ts, a.closed_ts, a.escalations, a.taken_by, a.outcome,"
    " a.trigger_count, coalesce(e.name, '')"
)
ALERT_FROM = "alerts AS a LEFT JOIN elders AS e ON e.id = a.elder_id"
N_ALERT_COLS = 22
QUEUE_MAX = 2000  # more active alerts than a district's centres could ever work through


def alert_from_row(row: Sequence[Any]) -> Alert:
    """An Alert from the ALERT_COLS of a row."""
    return Alert(
        alert_id=row[0],
        kind=row[1],
        severity=row[2],
        status=row[3],
        elder_id=row[4],
        device_id=row[5],
        center_id=row[6],
        distance_m=round(float(row[7]), 1),
        in_coverage=bool(row[8]),
        lat=float(row[9]),
        lon=float(row[10]),
        event_ts=int(row[11]),
        raised_ts=int(row[12]),
        updated_ts=int(row[13]),
        reason=row[14],
        acked_ts=row[15],
        closed_ts=row[16],
        escalations=int(row[17]),
        taken_by=row[18],
        outcome=row[19],
        trigger_count=int(row[20]),
        elder_name=row[21],
    )


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Filters of the alert list (empty tuples: no filter)."""

    statuses: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    center_ids: tuple[str, ...] = ()
    elder_ids: tuple[str, ...] = ()
    since_ts: int | None = None
    until_ts: int | None = None


def encode_cursor(raised_ts: int, alert_id: str) -> str:
    """An opaque cursor after the alert (raised_ts, alert_id)."""
    return base64.urlsafe_b64encode(json.dumps([raised_ts, alert_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    """(raised_ts, alert_id) of a cursor.

    Raises:
        ValueError: not a cursor of `encode_cursor`.
    """
    try:
        ts, aid = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("bad cursor") from exc
    if not isinstance(ts, int) or isinstance(ts, bool) or not isinstance(aid, str):
        raise ValueError("bad cursor")
    return ts, aid


def _visibility(user: User, where: list[str], params: list[Any]) -> None:
    if user.role is Role.FAMILY:
        where.append("a.elder_id = ANY(%s)")
        params.append(list(user.elder_ids))


def list_alerts(
    conn: Conn, user: User, f: AlertFilter, cursor: tuple[int, str] | None, limit: int
) -> tuple[list[Alert], str | None]:
    """One page of the alerts visible to `user`, newest first, and the next page's cursor.

    Active alerts are kept whatever the time range when the status filter admits them: an
    open alarm must never drop out of view because it was raised before the window.
    """
    where: list[str] = []
    params: list[Any] = []
    _visibility(user, where, params)
    for column, values in (
        ("a.status", f.statuses),
        ("a.kind", f.kinds),
        ("a.severity", f.severities),
        ("a.center_id", f.center_ids),
        ("a.elder_id", f.elder_ids),
    ):
        if values:
            where.append(f"{column} = ANY(%s)")
            params.append(list(values))
    if f.since_ts is not None or f.until_ts is not None:
        active = [s for s in ACTIVE_STATUSES if not f.statuses or s in f.statuses]
        where.append("(a.raised_ts >= %s AND a.raised_ts < %s OR a.status = ANY(%s))")
        params += [f.since_ts or 0, f.until_ts if f.until_ts is not None else 2**62, active]
    if cursor is not None:
        where.append("(a.raised_ts, a.alert_id) < (%s, %s)")
        params += list(cursor)
    sql = (
        f"SELECT {ALERT_COLS} FROM {ALERT_FROM}"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY a.raised_ts DESC, a.alert_id DESC LIMIT %s"
    )
    rows = conn.execute(sql, [*params, limit + 1]).fetchall()
    items = [alert_from_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    return items, encode_cursor(items[-1].raised_ts, items[-1].alert_id) if more else None


def queue(conn: Conn, user: User) -> list[Alert]:
    """The active alerts visible to `user`, in queue order (see dashboard.ordering)."""
    where = [ACTIVE_SQL]
    params: list[Any] = []
    _visibility(user, where, params)
    rows = conn.execute(
        f"SELECT {ALERT_COLS} FROM {ALERT_FROM} WHERE {' AND '.join(where)}"
        f" ORDER BY {QUEUE_ORDER_SQL} LIMIT %s",
        [*params, QUEUE_MAX],
    ).fetchall()
    return [alert_from_row(r) for r in rows]


def get_alert(conn: Conn, alert_id: str) -> Alert | None:
    """One alert by id."""
    row = conn.execute(
        f"SELECT {ALERT_COLS} FROM {ALERT_FROM} WHERE a.alert_id = %s", (alert_id,)
    ).fetchone()
    return alert_from_row(row) if row else None


def history(conn: Conn, alert_id: str) -> list[HistoryEntry]:
    """The alert's transitions in event order."""
    rows = conn.execute(
        "SELECT id, at_ts, from_status, to_status, center_id, actor, note"
        " FROM alert_transitions WHERE alert_id = %s ORDER BY id",
        (alert_id,),
    ).fetchall()
    return [
        HistoryEntry(
            event_id=r[0],
            at_ts=r[1],
            from_status=r[2],
            to_status=r[3],
            center_id=r[4],
            actor=r[5],
            note=r[6],
        )
        for r in rows
    ]


def steps(conn: Conn, alert_id: str) -> list[StepEntry]:
    """The procedure-card steps taken on the alert, oldest first."""
    rows = conn.execute(
        "SELECT id, step, result, at_ts, actor FROM alert_steps WHERE alert_id = %s ORDER BY id",
        (alert_id,),
    ).fetchall()
    return [StepEntry(id=r[0], step=r[1], result=r[2], at_ts=r[3], actor=r[4]) for r in rows]


@dataclass(frozen=True, slots=True)
class Locked:
    """What an action needs of an alert, read under its row lock."""

    status: str
    center_id: str
    elder_id: str
    taken_by: str | None


def lock_alert(conn: Conn, alert_id: str) -> Locked | None:
    """Lock the alert's row for the rest of the transaction; its holder is `taken_by` or,
    for an alert acknowledged elsewhere (the CLI), the actor of its last acknowledgement."""
    row = conn.execute(
        "SELECT a.status, a.center_id, a.elder_id, coalesce(a.taken_by, (SELECT t.actor"
        " FROM alert_transitions AS t WHERE t.alert_id = a.alert_id"
        " AND t.to_status = 'acknowledged' ORDER BY t.id DESC LIMIT 1))"
        " FROM alerts AS a WHERE a.alert_id = %s FOR UPDATE",
        (alert_id,),
    ).fetchone()
    return Locked(row[0], row[1], row[2], row[3]) if row else None


def act_as(conn: Conn, user: User) -> None:
    """Name the account behind the transitions of this transaction (alert_transitions.user_id)."""
    conn.execute("SELECT set_config('eldercare.user_id', %s, true)", (str(user.id),))


def set_taken(conn: Conn, alert_id: str, username: str, now_ms: int) -> None:
    """Record who holds the alert."""
    conn.execute(
        "UPDATE alerts SET taken_by = %s, taken_ts = %s WHERE alert_id = %s",
        (username, now_ms, alert_id),
    )


def set_outcome(conn: Conn, alert_id: str, outcome: str, username: str, now_ms: int) -> None:
    """Record how the alert ended (and its holder, when it was closed without a take)."""
    conn.execute(
        "UPDATE alerts SET outcome = %s, taken_by = coalesce(taken_by, %s),"
        " taken_ts = coalesce(taken_ts, %s) WHERE alert_id = %s",
        (outcome, username, now_ms, alert_id),
    )


def add_history(
    conn: Conn, alert_id: str, status: str, center_id: str, actor: str, note: str, now_ms: int
) -> int:
    """A history entry that keeps the status (a note, a handover); returns its event id."""
    row = conn.execute(
        "INSERT INTO alert_transitions (alert_id, at_ts, from_status, to_status, center_id,"
        " actor, note) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (alert_id, now_ms, status, status, center_id, actor, note),
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_step(conn: Conn, alert_id: str, step: str, result: str, user: User, now_ms: int) -> int:
    """Store one procedure-card step; returns its id."""
    row = conn.execute(
        "INSERT INTO alert_steps (alert_id, step, result, at_ts, user_id, actor)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (alert_id, step, result, now_ms, user.id, user.username),
    ).fetchone()
    assert row is not None
    return int(row[0])


def held_alerts(conn: Conn, username: str) -> list[tuple[str, str]]:
    """(alert_id, center_id) of the active alerts `username` holds."""
    rows = conn.execute(
        "SELECT alert_id, center_id FROM alerts WHERE taken_by = %s AND status = ANY(%s)"
        " ORDER BY alert_id",
        (username, ACTIVE_STATUSES),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def hand_over(conn: Conn, alert_ids: Sequence[str], user: User, to: str, now_ms: int) -> None:
    """Give the alerts `user` holds to `to`, each with a history entry (in one transaction)."""
    act_as(conn, user)
    rows = conn.execute(
        "UPDATE alerts SET taken_by = %s, taken_ts = %s WHERE alert_id = ANY(%s)"
        " AND taken_by = %s RETURNING alert_id, status, center_id",
        (to, now_ms, list(alert_ids), user.username),
    ).fetchall()
    for alert_id, status, center_id in sorted(rows):
        add_history(
            conn, alert_id, status, center_id, user.username, f"handed over to {to}", now_ms
        )
