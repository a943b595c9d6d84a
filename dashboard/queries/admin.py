"""SQL of the admin views: dead letters with their raw bytes, and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message as stored by ingest (contract §1 "Rejected input")."""

    id: int
    received_ts: int  # platform ms
    topic: str
    reason: str
    detail: str
    size_bytes: int
    payload: bytes | None  # only when one letter is read


_DL_COLS = (
    "id, (extract(epoch FROM received_at) * 1000)::bigint, topic, reason, detail,"
    " octet_length(payload)"
)


def list_dead_letters(
    conn: Conn, *, reason: str | None, before_id: int | None, limit: int
) -> list[DeadLetter]:
    """Newest first, keyset-paged by id."""
    rows = conn.execute(
        f"SELECT {_DL_COLS} FROM dead_letters"
        " WHERE (%(reason)s::text IS NULL OR reason = %(reason)s)"
        " AND (%(before)s::bigint IS NULL OR id < %(before)s) ORDER BY id DESC LIMIT %(limit)s",
        {"reason": reason, "before": before_id, "limit": limit},
    ).fetchall()
    return [DeadLetter(int(r[0]), int(r[1]), r[2], r[3], r[4], int(r[5]), None) for r in rows]


def get_dead_letter(conn: Conn, letter_id: int) -> DeadLetter | None:
    """One dead letter with its raw payload, or None."""
    row = conn.execute(
        f"SELECT {_DL_COLS}, payload FROM dead_letters WHERE id = %s", (letter_id,)
    ).fetchone()
    if row is None:
        return None
    return DeadLetter(int(row[0]), int(row[1]), row[2], row[3], row[4], int(row[5]), bytes(row[6]))


def unknown_ids(conn: Conn, table: str, ids: list[str]) -> list[str]:
    """Those of `ids` with no row in `table` ("elders" or "care_centers"), in the given order."""
    if table not in ("elders", "care_centers"):
        raise ValueError(table)
    rows = conn.execute(
        f"SELECT u.id FROM unnest(%s::text[]) WITH ORDINALITY AS u (id, n)"
        f" WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE t.id = u.id) ORDER BY u.n",
        (ids,),
    ).fetchall()
    return [str(r[0]) for r in rows]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded action of a person."""

    id: int
    at_ts: int
    username: str
    action: str
    target: str
    detail: dict[str, Any]
    ip: str


def list_audit(
    conn: Conn,
    *,
    username: str | None,
    action: str | None,
    target: str | None,
    before_id: int | None,
    limit: int,
) -> list[AuditEntry]:
    """Newest first, keyset-paged by id, optionally for one user, action or target."""
    rows = conn.execute(
        "SELECT id, at_ts, username, action, target, detail, ip FROM audit"
        " WHERE (%(user)s::text IS NULL OR username = %(user)s)"
        " AND (%(action)s::text IS NULL OR action = %(action)s)"
        " AND (%(target)s::text IS NULL OR target = %(target)s)"
        " AND (%(before)s::bigint IS NULL OR id < %(before)s) ORDER BY id DESC LIMIT %(limit)s",
        {
            "user": username,
            "action": action,
            "target": target,
            "before": before_id,
            "limit": limit,
        },
    ).fetchall()
    return [AuditEntry(int(r[0]), int(r[1]), r[2], r[3], r[4], dict(r[5]), r[6]) for r in rows]
