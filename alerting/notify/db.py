"""SQL of the notifier: read the alert stream, plan into the outbox, claim and record."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerting.notify.planner import Event, Planned, Recipient, WebhookTarget
from alerting.notify.policy import GOING_NOTE, Outcome, Prefs

Conn = psycopg.Connection[Any]
CURSOR = "notify"

_ALERT_COLS = (
    "a.alert_id, a.kind, a.severity, a.status, a.elder_id, a.device_id, a.center_id,"
    " a.event_ts, a.raised_ts, a.updated_ts, a.acked_ts, a.closed_ts, a.taken_by,"
    " coalesce(e.name, '')"
)
_ALERT_NAMES = (
    "alert_id", "kind", "severity", "status", "elder_id", "device_id", "center_id",
    "event_ts", "raised_ts", "updated_ts", "acked_ts", "closed_ts", "taken_by", "elder_name",
)  # fmt: skip


def cursor_position(conn: Conn) -> int:
    """The notifier's cursor, created at the stream's head the first time (autocommit)."""
    conn.execute(
        "INSERT INTO notify_cursor (name, event_id)"
        " SELECT %s, coalesce(max(id), 0) FROM alert_transitions ON CONFLICT DO NOTHING",
        (CURSOR,),
    )
    row = conn.execute("SELECT event_id FROM notify_cursor WHERE name = %s", (CURSOR,)).fetchone()
    assert row is not None
    return int(row[0])


def lock_cursor(conn: Conn) -> int:
    """The cursor, locked for the rest of the transaction (one planner at a time)."""
    row = conn.execute(
        "SELECT event_id FROM notify_cursor WHERE name = %s FOR UPDATE", (CURSOR,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def move_cursor(conn: Conn, event_id: int) -> None:
    """Store the cursor (inside the planning transaction)."""
    conn.execute("UPDATE notify_cursor SET event_id = %s WHERE name = %s", (event_id, CURSOR))


def events_after(conn: Conn, after_id: int, limit: int) -> list[Event]:
    """Alert events after `after_id`, oldest first, with the alert's current fields."""
    rows = conn.execute(
        "SELECT t.id, t.from_status, t.to_status, t.note, t.actor, t.user_id, t.at_ts, "
        + _ALERT_COLS
        + " FROM alert_transitions AS t JOIN alerts AS a ON a.alert_id = t.alert_id"
        " LEFT JOIN elders AS e ON e.id = a.elder_id WHERE t.id > %s ORDER BY t.id LIMIT %s",
        (after_id, limit),
    ).fetchall()
    return [
        Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], dict(zip(_ALERT_NAMES, r[7:], strict=True)))
        for r in rows
    ]


def family_of(conn: Conn, elder_id: str) -> list[Recipient]:
    """Enabled family accounts linked to the elder, with preferences and targets."""
    rows = conn.execute(
        "SELECT u.id, u.username, p.kinds, p.quiet_from, p.quiet_to, p.time_zone,"
        " ARRAY(SELECT s.id FROM push_subscriptions AS s WHERE s.user_id = u.id ORDER BY s.id),"
        " ARRAY(SELECT w.id FROM notify_webhooks AS w WHERE w.user_id = u.id"
        "       AND w.channel = 'message' ORDER BY w.id),"
        " ARRAY(SELECT w.id FROM notify_webhooks AS w WHERE w.user_id = u.id"
        "       AND w.channel = 'voice' ORDER BY w.id)"
        " FROM user_elders AS ue JOIN users AS u ON u.id = ue.user_id"
        " LEFT JOIN notify_prefs AS p ON p.user_id = u.id"
        " WHERE ue.elder_id = %s AND u.role = 'family' AND NOT u.disabled ORDER BY u.id",
        (elder_id,),
    ).fetchall()
    out = []
    for uid, name, kinds, q_from, q_to, tz, subs, msgs, voices in rows:
        prefs = Prefs() if kinds is None else Prefs(frozenset(kinds), q_from, q_to, tz)
        hooks = tuple(WebhookTarget(h) for h in msgs) + tuple(
            WebhookTarget(h, True) for h in voices
        )
        out.append(Recipient(int(uid), str(name), prefs, tuple(subs), hooks))
    return out


def center_webhooks(conn: Conn, center_id: str) -> list[WebhookTarget]:
    """Webhooks registered for a care centre."""
    rows = conn.execute(
        "SELECT id, channel = 'voice' FROM notify_webhooks WHERE center_id = %s ORDER BY id",
        (center_id,),
    ).fetchall()
    return [WebhookTarget(int(r[0]), bool(r[1])) for r in rows]


def store_planned(conn: Conn, event: Event, planned: Iterable[Planned], now_ms: int) -> None:
    """Insert planned notifications; a key already stored (the same alert state) is kept."""
    snapshot = {**event.alert}
    if not str(planned_first_state(planned)).startswith("going:"):
        snapshot["status"] = event.to_status
    params = [
        (
            p.key, event.alert["alert_id"], event.event_id, p.state_key, p.user_id, p.center_id,
            p.channel.value, p.target_id, p.urgent, Jsonb(snapshot), secrets.token_urlsafe(16),
            now_ms, p.due_ts,
        )
        for p in planned
    ]  # fmt: skip
    if not params:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO notify_deliveries (delivery_key, alert_id, event_id, state_key, user_id,"
            " center_id, channel, target_id, urgent, payload, receipt_token, created_ts, due_ts)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (delivery_key) DO NOTHING",
            params,
        )


def planned_first_state(planned: Iterable[Planned]) -> str:
    """The state key of a plan (all of one event's notifications share it)."""
    for p in planned:
        return p.state_key
    return ""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery leased for one attempt, with its target's details."""

    id: int
    channel: str
    target_id: int
    urgent: bool
    payload: dict[str, Any]
    receipt: str
    attempts: int
    alert_id: str
    state_key: str
    target: tuple[str, str, str] | None  # (endpoint, p256dh, auth) or (url, secret, "")


def claim(conn: Conn, now_ms: int, lease_ms: int, limit: int) -> list[Claimed]:
    """Lease up to `limit` due deliveries, urgent ones first (their due time moves to the
    lease's end)."""
    rows = conn.execute(
        "UPDATE notify_deliveries AS d SET due_ts = %s, attempts = d.attempts + 1"
        " FROM (SELECT id FROM notify_deliveries WHERE status = 'pending' AND due_ts <= %s"
        "       ORDER BY urgent DESC, due_ts, id LIMIT %s FOR UPDATE SKIP LOCKED) AS c"
        " WHERE d.id = c.id RETURNING d.id, d.channel, d.target_id, d.urgent, d.payload,"
        " d.receipt_token, d.attempts, d.alert_id, d.state_key,"
        " (SELECT ARRAY[s.endpoint, s.p256dh, s.auth] FROM push_subscriptions AS s"
        "  WHERE d.channel = 'push' AND s.id = d.target_id),"
        " (SELECT ARRAY[w.url, w.secret, ''] FROM notify_webhooks AS w"
        "  WHERE d.channel <> 'push' AND w.id = d.target_id)",
        (now_ms + lease_ms, now_ms, limit),
    ).fetchall()
    out = []
    for r in rows:
        target = r[9] if r[9] is not None else r[10]
        out.append(
            Claimed(
                int(r[0]), str(r[1]), int(r[2]), bool(r[3]), dict(r[4]), str(r[5]), int(r[6]),
                str(r[7]), str(r[8]), None if target is None else (target[0], target[1], target[2]),
            )
        )  # fmt: skip
    return out


def voice_state(conn: Conn, alert_ids: Sequence[str]) -> dict[str, tuple[str, int | None, bool]]:
    """Per alert: status, first take, and whether a family member said they are going."""
    rows = conn.execute(
        "SELECT a.alert_id, a.status, a.acked_ts, EXISTS (SELECT 1 FROM alert_transitions AS t"
        " JOIN users AS u ON u.id = t.user_id AND u.role = 'family'"
        " WHERE t.alert_id = a.alert_id AND t.note = %s)"
        " FROM alerts AS a WHERE a.alert_id = ANY(%s)",
        (GOING_NOTE, list(alert_ids)),
    ).fetchall()
    return {str(r[0]): (str(r[1]), r[2], bool(r[3])) for r in rows}


@dataclass(frozen=True, slots=True)
class Result:
    """One attempt's result, to record."""

    delivery_id: int
    outcome: Outcome
    status_code: int | None
    error: str
    duration_ms: int
    retry_at_ms: int | None = None  # for RETRY
    gone_subscription: int | None = None


def record(conn: Conn, results: Sequence[Result], now_ms: int) -> None:
    """Store the attempts and move each delivery on (one transaction)."""
    if not results:
        return
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO notify_attempts (delivery_id, at_ts, status_code, outcome, error,"
            " duration_ms) VALUES (%s, %s, %s, %s, %s, %s)",
            [(r.delivery_id, now_ms, r.status_code, r.outcome.value, r.error[:500], r.duration_ms)
             for r in results],
        )  # fmt: skip
        cur.executemany(
            "UPDATE notify_deliveries SET"
            " status = CASE %(o)s WHEN 'retry' THEN 'pending' WHEN 'sent' THEN 'sent'"
            "   WHEN 'skipped' THEN 'skipped' ELSE 'failed' END,"
            " due_ts = coalesce(%(retry)s, due_ts),"
            " sent_ts = CASE WHEN %(o)s = 'sent' THEN %(now)s ELSE sent_ts END,"
            " failed_ts = CASE WHEN %(o)s IN ('gone', 'failed') THEN %(now)s ELSE failed_ts END,"
            " last_error = %(err)s"
            " WHERE id = %(id)s AND status = 'pending'",
            [{"o": r.outcome.value, "retry": r.retry_at_ms, "now": now_ms, "err": r.error[:500],
              "id": r.delivery_id} for r in results],
        )  # fmt: skip
        gone = sorted({r.gone_subscription for r in results if r.gone_subscription is not None})
        if gone:
            conn.execute("DELETE FROM push_subscriptions WHERE id = ANY(%s)", (gone,))


def publish_public_key(conn: Conn, public_key: str, now_ms: int) -> None:
    """Store the VAPID public key the notifier signs with (read by the dashboard)."""
    conn.execute(
        "INSERT INTO notify_keys (name, public_key, updated_ts) VALUES ('vapid', %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET public_key = excluded.public_key,"
        " updated_ts = excluded.updated_ts",
        (public_key, now_ms),
    )
