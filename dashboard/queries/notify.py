"""SQL of family notifications: push subscriptions, webhooks, preferences, deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from alerting.notify.policy import ALL_KINDS, DEFAULT_TIME_ZONE

Conn = psycopg.Connection[Any]


def add_subscription(
    conn: Conn, user_id: int, endpoint: str, p256dh: str, auth: str, agent: str, now_ms: int
) -> int:
    """Store a browser's subscription for the user; a browser signing in again as another
    account moves its endpoint to that account (one endpoint, one recipient)."""
    row = conn.execute(
        "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, user_agent, created_ts)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (endpoint) DO UPDATE SET"
        " user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth,"
        " user_agent = excluded.user_agent, created_ts = excluded.created_ts RETURNING id",
        (user_id, endpoint, p256dh, auth, agent, now_ms),
    ).fetchone()
    assert row is not None
    return int(row[0])


def delete_subscription(conn: Conn, user_id: int, endpoint: str) -> bool:
    """Remove the user's subscription of `endpoint`; False when they have none."""
    cur = conn.execute(
        "DELETE FROM push_subscriptions WHERE user_id = %s AND endpoint = %s", (user_id, endpoint)
    )
    return cur.rowcount > 0


def subscriptions(conn: Conn, user_id: int) -> list[tuple[int, str, str, int]]:
    """(id, endpoint, user agent, created) of the user's subscriptions."""
    rows = conn.execute(
        "SELECT id, endpoint, user_agent, created_ts FROM push_subscriptions"
        " WHERE user_id = %s ORDER BY id",
        (user_id,),
    ).fetchall()
    return [(int(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]


@dataclass(frozen=True, slots=True)
class Hook:
    """A registered webhook (its secret is shown once, at registration)."""

    id: int
    url: str
    channel: str
    user_id: int | None
    center_id: str | None
    created_ts: int


def add_webhook(
    conn: Conn,
    user_id: int | None,
    center_id: str | None,
    channel: str,
    url: str,
    secret: str,
    now_ms: int,
) -> Hook:
    """Register a webhook of a family member or of a centre."""
    row = conn.execute(
        "INSERT INTO notify_webhooks (user_id, center_id, channel, url, secret, created_ts)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (user_id, center_id, channel, url, secret, now_ms),
    ).fetchone()
    assert row is not None
    return Hook(int(row[0]), url, channel, user_id, center_id, now_ms)


def webhooks(conn: Conn, user_id: int | None, center_ids: Sequence[str] | None) -> list[Hook]:
    """The user's own webhooks and those of the given centres (None: every centre)."""
    rows = conn.execute(
        "SELECT id, url, channel, user_id, center_id, created_ts FROM notify_webhooks"
        " WHERE user_id = %s OR (center_id IS NOT NULL AND (%s::text[] IS NULL"
        " OR center_id = ANY(%s::text[]))) ORDER BY id",
        (user_id, center_ids, center_ids),
    ).fetchall()
    return [Hook(int(r[0]), r[1], r[2], r[3], r[4], int(r[5])) for r in rows]


def delete_webhook(conn: Conn, hook_id: int) -> None:
    """Remove a webhook (the caller checked it is the user's to remove)."""
    conn.execute("DELETE FROM notify_webhooks WHERE id = %s", (hook_id,))


@dataclass(frozen=True, slots=True)
class PrefsRow:
    """A person's preferences (defaults when never saved)."""

    kinds: list[str]
    quiet_from: str | None
    quiet_to: str | None
    time_zone: str
    language: str


def get_prefs(conn: Conn, user_id: int) -> PrefsRow:
    """The user's preferences; every kind, no quiet hours, Asia/Shanghai when never saved."""
    row = conn.execute(
        "SELECT p.kinds, p.quiet_from, p.quiet_to, p.time_zone, u.language FROM users AS u"
        " LEFT JOIN notify_prefs AS p ON p.user_id = u.id WHERE u.id = %s",
        (user_id,),
    ).fetchone()
    assert row is not None
    if row[0] is None:
        return PrefsRow(list(ALL_KINDS), None, None, DEFAULT_TIME_ZONE, row[4])
    return PrefsRow(list(row[0]), row[1], row[2], row[3], row[4])


def put_prefs(conn: Conn, user_id: int, prefs: PrefsRow, now_ms: int) -> None:
    """Store the preferences; the language is the account's own (page and notifications)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO notify_prefs (user_id, kinds, quiet_from, quiet_to, time_zone,"
            " updated_ts) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET"
            " kinds = excluded.kinds, quiet_from = excluded.quiet_from,"
            " quiet_to = excluded.quiet_to, time_zone = excluded.time_zone,"
            " updated_ts = excluded.updated_ts",
            (user_id, prefs.kinds, prefs.quiet_from, prefs.quiet_to, prefs.time_zone, now_ms),
        )
        conn.execute("UPDATE users SET language = %s WHERE id = %s", (prefs.language, user_id))


def receipt(conn: Conn, delivery_id: int, token: str, state: str, now_ms: int) -> bool:
    """A service worker's report that a push arrived (`delivered`) or was opened (`read`)."""
    column = "delivered_ts" if state == "delivered" else "read_ts"
    rank = "('pending', 'sent')" if state == "delivered" else "('pending', 'sent', 'delivered')"
    cur = conn.execute(
        f"UPDATE notify_deliveries SET {column} = coalesce({column}, %s),"
        " sent_ts = coalesce(sent_ts, %s),"
        f" status = CASE WHEN status IN {rank} THEN %s ELSE status END"
        " WHERE id = %s AND receipt_token = %s AND channel = 'push'",
        (now_ms, now_ms, state, delivery_id, token),
    )
    return cur.rowcount > 0


def mark_read(conn: Conn, user_id: int, alert_id: str, now_ms: int) -> int:
    """The member opened the alert on the page: their sent notifications of it are read."""
    cur = conn.execute(
        "UPDATE notify_deliveries SET read_ts = coalesce(read_ts, %s), status = 'read'"
        " WHERE user_id = %s AND alert_id = %s AND status IN ('sent', 'delivered')",
        (now_ms, user_id, alert_id),
    )
    return cur.rowcount


DELIVERY_COLS = (
    "d.id, d.alert_id, d.state_key, d.channel, d.status, d.attempts, d.created_ts, d.sent_ts,"
    " d.delivered_ts, d.read_ts, d.failed_ts, d.last_error, u.username, d.center_id"
)
DELIVERY_FROM = "notify_deliveries AS d LEFT JOIN users AS u ON u.id = d.user_id"


def deliveries(conn: Conn, alert_id: str, user_id: int | None) -> list[tuple[Any, ...]]:
    """The deliveries of an alert (only the member's own when `user_id` is given)."""
    rows = conn.execute(
        f"SELECT {DELIVERY_COLS} FROM {DELIVERY_FROM} WHERE d.alert_id = %s"
        " AND (%s::bigint IS NULL OR d.user_id = %s) ORDER BY d.id",
        (alert_id, user_id, user_id),
    ).fetchall()
    return [tuple(r) for r in rows]


def failed(conn: Conn, before_id: int | None, limit: int) -> list[tuple[Any, ...]]:
    """Failed deliveries, newest first."""
    rows = conn.execute(
        f"SELECT {DELIVERY_COLS} FROM {DELIVERY_FROM} WHERE d.status = 'failed'"
        " AND (%s::bigint IS NULL OR d.id < %s) ORDER BY d.id DESC LIMIT %s",
        (before_id, before_id, limit),
    ).fetchall()
    return [tuple(r) for r in rows]


def attempts(conn: Conn, delivery_ids: Sequence[int]) -> dict[int, list[tuple[Any, ...]]]:
    """Every attempt of these deliveries: (at, HTTP status, outcome, error)."""
    rows = conn.execute(
        "SELECT delivery_id, at_ts, status_code, outcome, error FROM notify_attempts"
        " WHERE delivery_id = ANY(%s) ORDER BY id",
        (list(delivery_ids),),
    ).fetchall()
    out: dict[int, list[tuple[Any, ...]]] = {}
    for r in rows:
        out.setdefault(int(r[0]), []).append(tuple(r[1:]))
    return out


def open_alert_elders(conn: Conn, elder_ids: Sequence[str]) -> set[str]:
    """Which of these elders have an active alert now."""
    rows = conn.execute(
        "SELECT DISTINCT elder_id FROM alerts WHERE elder_id = ANY(%s)"
        " AND status IN ('open', 'acknowledged', 'escalated')",
        (list(elder_ids),),
    ).fetchall()
    return {str(r[0]) for r in rows}


def elder_homes(conn: Conn, elder_ids: Sequence[str]) -> dict[str, tuple[str, float, float]]:
    """Name and home position of these elders."""
    rows = conn.execute(
        "SELECT id, name, home_lat, home_lon FROM elders WHERE id = ANY(%s)", (list(elder_ids),)
    ).fetchall()
    return {str(r[0]): (str(r[1]), float(r[2]), float(r[3])) for r in rows}


def center_names(conn: Conn) -> dict[str, str]:
    """Care centre names by id (for "taken by the Shichahai centre")."""
    return {str(r[0]): str(r[1]) for r in conn.execute("SELECT id, name FROM care_centers")}


def vapid_public_key(conn: Conn) -> str | None:
    """The VAPID public key the notifier published at start (None before it first ran)."""
    row = conn.execute("SELECT public_key FROM notify_keys WHERE name = 'vapid'").fetchone()
    return None if row is None else str(row[0])
