"""Alert actions of a signed-in user: take, resolve, note, procedure step.

Each runs in one transaction that locks the alert's row first, so the checks (who may act,
who holds it) and the change are atomic: of two dispatchers taking the same alert at the
same moment exactly one wins, the other is told who did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from alerting import store
from alerting.lifecycle import AlertRow, TransitionError
from dashboard.accounts import Outcome, Role, Step, User
from dashboard.queries import alerts as alerts_q
from dashboard.queries import users as users_q
from gateway.contract import AlertStatus

Conn = psycopg.Connection[Any]
_ACTIVE = frozenset(alerts_q.ACTIVE_STATUSES)
_TAKEABLE = frozenset({AlertStatus.OPEN.value, AlertStatus.ESCALATED.value})


class ActionError(Exception):
    """An action refused: an HTTP status and a message for the user."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Done:
    """What an action changed: the alert's new state when its status changed, the event id."""

    alert: AlertRow | None
    event_id: int | None = None


def _locked(conn: Conn, user: User, alert_id: str) -> alerts_q.Locked:
    """Lock the alert and check the user may act on it (404 unseen, 403 not theirs)."""
    cur = alerts_q.lock_alert(conn, alert_id)
    if cur is None or not user.sees_elder(cur.elder_id):
        raise ActionError(404, "no such alert")
    if not user.acts_for(cur.center_id):
        raise ActionError(403, f"alert is routed to centre {cur.center_id}")
    alerts_q.act_as(conn, user)
    return cur


def _held_by_other(cur: alerts_q.Locked, user: User) -> bool:
    return (
        cur.status == AlertStatus.ACKNOWLEDGED.value
        and cur.taken_by is not None
        and cur.taken_by != user.username
        and user.role is not Role.ADMIN
    )


def take(conn: Conn, user: User, alert_id: str, now_ms: int, ip: str = "") -> Done:
    """Acknowledge the alert as taken by `user`.

    Raises:
        ActionError: 404, 403, or 409 "taken by X" / not takeable in its status.
    """
    with conn.transaction():
        cur = _locked(conn, user, alert_id)
        if cur.status == AlertStatus.ACKNOWLEDGED.value:
            raise ActionError(409, f"taken by {cur.taken_by or 'another console'}")
        if cur.status not in _TAKEABLE:
            raise ActionError(409, f"alert is {cur.status}")
        alert = _transition(conn, alert_id, AlertStatus.ACKNOWLEDGED, user, "taken", now_ms)
        alerts_q.set_taken(conn, alert_id, user.username, now_ms)
        users_q.audit(conn, user, "take", now_ms, target=alert_id, ip=ip)
    return Done(alert)


def resolve(
    conn: Conn, user: User, alert_id: str, outcome: Outcome, note: str, now_ms: int, ip: str = ""
) -> Done:
    """Close the alert with an outcome (its holder, any dispatcher of the centre when
    nobody holds it, or an admin).

    Raises:
        ActionError: 404, 403, or 409 when closed already or held by someone else.
    """
    with conn.transaction():
        cur = _locked(conn, user, alert_id)
        if cur.status not in _ACTIVE:
            raise ActionError(409, f"alert is {cur.status}")
        if _held_by_other(cur, user):
            raise ActionError(409, f"taken by {cur.taken_by}")
        text = f"{outcome.value}: {note}" if note else outcome.value
        alert = _transition(conn, alert_id, AlertStatus.RESOLVED, user, text, now_ms)
        alerts_q.set_outcome(conn, alert_id, outcome.value, user.username, now_ms)
        users_q.audit(
            conn,
            user,
            "resolve",
            now_ms,
            target=alert_id,
            detail={"outcome": outcome.value, "note": note},
            ip=ip,
        )
    return Done(alert)


def add_note(conn: Conn, user: User, alert_id: str, note: str, now_ms: int, ip: str = "") -> Done:
    """Keep a note in the alert's history (status unchanged); returns its event id.

    Raises:
        ActionError: 404 or 403.
    """
    with conn.transaction():
        cur = _locked(conn, user, alert_id)
        event_id = alerts_q.add_history(
            conn, alert_id, cur.status, cur.center_id, user.username, note, now_ms
        )
        users_q.audit(conn, user, "note", now_ms, target=alert_id, detail={"note": note}, ip=ip)
    return Done(None, event_id)


def add_step(
    conn: Conn, user: User, alert_id: str, step: Step, result: str, now_ms: int, ip: str = ""
) -> Done:
    """Log a procedure-card step with its time; only on an active alert, by its holder.

    Raises:
        ActionError: 404, 403, or 409 when closed or held by someone else.
    """
    with conn.transaction():
        cur = _locked(conn, user, alert_id)
        if cur.status not in _ACTIVE:
            raise ActionError(409, f"alert is {cur.status}")
        if _held_by_other(cur, user):
            raise ActionError(409, f"taken by {cur.taken_by}")
        step_id = alerts_q.add_step(conn, alert_id, step.value, result, user, now_ms)
        users_q.audit(
            conn,
            user,
            "step",
            now_ms,
            target=alert_id,
            detail={"step": step.value, "result": result},
            ip=ip,
        )
    return Done(None, step_id)


def _transition(
    conn: Conn, alert_id: str, target: AlertStatus, user: User, note: str, now_ms: int
) -> AlertRow:
    try:
        return store.transition(conn, alert_id, target, user.username, note, now_ms)
    except TransitionError as exc:  # the row is locked: only a lifecycle rule can refuse
        raise ActionError(409, str(exc)) from exc
