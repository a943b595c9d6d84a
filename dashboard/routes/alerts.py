"""Alert list, queue and detail; take, resolve, notes and procedure steps."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel

from dashboard import actions
from dashboard.accounts import User
from dashboard.deps import ActingUser, Conn, CurrentUser, NowMs, client_ip
from dashboard.errors import errors
from dashboard.models import (
    Alert,
    AlertOut,
    AlertPage,
    AlertQueue,
    Created,
    HistoryEntry,
    NoteIn,
    ResolveIn,
    StepEntry,
    StepIn,
)
from dashboard.publisher import AlertPublisher
from dashboard.queries import alerts as alerts_q
from dashboard.routes.elders import ElderCard, elder_card
from gateway.contract import AlertKind, AlertStatus, Severity

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

_READ = errors(401, 404, 422)
_ACT = errors(
    401,
    403,
    404,
    409,
    422,
    s403="Not routed to this dispatcher's centre, or a read-only role",
    s409="Taken by someone else, or not in a status that allows it",
)
# Alert ids are `al-` and hex (alerting.store.new_alert_id); anything else names no alert.
AlertId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
# Tries of an action rolled back by a deadlock or serialization failure.
ATTEMPTS = 3
# A page of more than this many alerts is more than a screen can show.
PAGE_MAX = 500


class AlertDetail(BaseModel):
    """An alert with its history, the elder's card and the procedure steps taken."""

    alert: Alert
    history: list[HistoryEntry]
    elder: ElderCard | None
    steps: list[StepEntry]


def _csv(value: str | None, enum: type[StrEnum], name: str) -> tuple[str, ...]:
    if not value:
        return ()
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in enum.__members__.values()]
    if bad:
        raise HTTPException(422, f"unknown {name}: {', '.join(bad)}")
    return items


def _ids(value: str | None) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()
    if any("\x00" in v for v in items):  # PostgreSQL text cannot hold NUL
        raise HTTPException(422, "ids cannot contain NUL")
    return items


def _visible(conn: Conn, user: User, alert_id: str) -> Alert:
    alert = alerts_q.get_alert(conn, alert_id)
    if alert is None or not user.sees_elder(alert.elder_id):
        raise HTTPException(404, "no such alert")
    return alert


@router.get("", response_model=AlertPage, responses=_READ)
def list_alerts(
    conn: Conn,
    user: CurrentUser,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    kind: Annotated[str | None, Query(description="comma-separated kinds")] = None,
    severity: Annotated[str | None, Query(description="comma-separated severities")] = None,
    center_id: Annotated[str | None, Query(description="comma-separated centre ids")] = None,
    elder_id: Annotated[str | None, Query(description="comma-separated elder ids")] = None,
    since_ts: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    until_ts: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
) -> AlertPage:
    """Alerts newest first; active ones are never hidden by the time range."""
    elders = _ids(elder_id)
    if any(not user.sees_elder(e) for e in elders):
        raise HTTPException(404, "no such elder")
    filt = alerts_q.AlertFilter(
        statuses=_csv(status, AlertStatus, "status"),
        kinds=_csv(kind, AlertKind, "kind"),
        severities=_csv(severity, Severity, "severity"),
        center_ids=_ids(center_id),
        elder_ids=elders,
        since_ts=since_ts,
        until_ts=until_ts,
    )
    try:
        after = alerts_q.decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise HTTPException(422, "bad cursor") from exc
    items, next_cursor = alerts_q.list_alerts(conn, user, filt, after, limit)
    return AlertPage(items=items, next_cursor=next_cursor)


@router.get("/queue", response_model=AlertQueue, responses=errors(401))
def alert_queue(conn: Conn, user: CurrentUser) -> AlertQueue:
    """Active alerts: smoke first, then critical to low, then oldest first."""
    return AlertQueue(items=alerts_q.queue(conn, user))


@router.get("/{alert_id}", response_model=AlertDetail, responses=_READ)
def alert_detail(alert_id: AlertId, conn: Conn, user: CurrentUser) -> AlertDetail:
    """One alert with its full history, the elder's card and the procedure steps."""
    alert = _visible(conn, user, alert_id)
    return AlertDetail(
        alert=alert,
        history=alerts_q.history(conn, alert_id),
        elder=elder_card(conn, user, alert.elder_id),
        steps=alerts_q.steps(conn, alert_id),
    )


def _publisher(request: Request) -> AlertPublisher | None:
    publisher: AlertPublisher | None = request.app.state.publisher
    return publisher


def _run(request: Request, conn: Conn, action: Any, *args: Any) -> actions.Done:
    for attempt in range(ATTEMPTS):
        try:
            done: actions.Done = action(conn, *args, client_ip(request))
            break
        except actions.ActionError as exc:
            raise HTTPException(exc.status, exc.detail) from exc
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            # A deadlock with another writer of the same alerts (PostgreSQL rolls one side
            # back): the action is one transaction, so it is repeated whole.
            if attempt == ATTEMPTS - 1:
                raise
    publisher = _publisher(request)
    if done.alert is not None and publisher is not None:
        publisher.publish(done.alert)  # contract §2: every change of state is published
    return done


def _after(conn: Conn, alert_id: str) -> AlertOut:
    alert = alerts_q.get_alert(conn, alert_id)
    assert alert is not None
    return AlertOut(alert=alert)


@router.post("/{alert_id}/ack", response_model=AlertOut, responses=_ACT)
def take(alert_id: AlertId, request: Request, conn: Conn, user: ActingUser, now: NowMs) -> AlertOut:
    """Take the alert (acknowledge it): exactly one console wins; the others get 409."""
    _run(request, conn, actions.take, user, alert_id, now)
    return _after(conn, alert_id)


@router.post(
    "/{alert_id}/resolve",
    response_model=AlertOut,
    responses=_ACT,
)
def resolve(
    alert_id: AlertId, body: ResolveIn, request: Request, conn: Conn, user: ActingUser, now: NowMs
) -> AlertOut:
    """Close the alert with an outcome code and an optional note."""
    _run(request, conn, actions.resolve, user, alert_id, body.outcome, body.note, now)
    return _after(conn, alert_id)


@router.post("/{alert_id}/notes", status_code=201, response_model=Created, responses=_ACT)
def add_note(
    alert_id: AlertId, body: NoteIn, request: Request, conn: Conn, user: ActingUser, now: NowMs
) -> Created:
    """Keep a note in the alert's history; returns its event id."""
    done = _run(request, conn, actions.add_note, user, alert_id, body.note, now)
    assert done.event_id is not None
    return Created(id=done.event_id)


@router.post("/{alert_id}/steps", status_code=201, response_model=Created, responses=_ACT)
def add_step(
    alert_id: AlertId, body: StepIn, request: Request, conn: Conn, user: ActingUser, now: NowMs
) -> Created:
    """Log a procedure-card step (timed) and what came of it."""
    done = _run(request, conn, actions.add_step, user, alert_id, body.step, body.result, now)
    assert done.event_id is not None
    return Created(id=done.event_id)
