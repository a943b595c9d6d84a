"""Signed webhooks (Standard Webhooks) of family members and centres; delivery states."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from alerting.notify.signing import new_secret
from dashboard.accounts import Role
from dashboard.deps import ActingUser, AdminUser, Conn, CurrentUser, NowMs
from dashboard.errors import errors
from dashboard.queries import alerts as alerts_q
from dashboard.queries import notify as notify_q
from dashboard.routes.push import URL_CHARS, check_target_url

router = APIRouter(tags=["notifications"])

AlertId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class WebhookIn(BaseModel):
    """A webhook to register: an SMS/WeChat gateway (`message`) or a voice-call one."""

    url: str = Field(min_length=10, max_length=2000, pattern=URL_CHARS)
    channel: Literal["message", "voice"] = "message"
    # A centre's webhook (admins, or a dispatcher for their own centre); else the user's own.
    center_id: str | None = Field(None, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")


class WebhookOut(BaseModel):
    """A registered webhook; `secret` only in the answer to its registration."""

    id: int
    url: str
    channel: str
    center_id: str | None
    created_ts: int
    secret: str | None = None


class Attempt(BaseModel):
    """One attempt of a delivery."""

    at_ts: int
    status_code: int | None
    outcome: str
    error: str


class Delivery(BaseModel):
    """A notification to one person (or centre) by one channel, and how far it got."""

    delivery_id: int
    alert_id: str
    state_key: str
    channel: str
    state: str
    attempts: int
    username: str | None
    center_id: str | None
    created_ts: int
    sent_ts: int | None
    delivered_ts: int | None
    read_ts: int | None
    failed_ts: int | None
    last_error: str
    history: list[Attempt] = []


class DeliveryPage(BaseModel):
    """Deliveries, with every attempt."""

    items: list[Delivery]


def _hook_out(h: notify_q.Hook, secret: str | None = None) -> WebhookOut:
    return WebhookOut(
        id=h.id, url=h.url, channel=h.channel, center_id=h.center_id, created_ts=h.created_ts,
        secret=secret,
    )  # fmt: skip


def _deliveries(conn: Conn, rows: list[tuple[Any, ...]]) -> DeliveryPage:
    tries = notify_q.attempts(conn, [int(r[0]) for r in rows])
    items = [
        Delivery(
            delivery_id=r[0], alert_id=r[1], state_key=r[2], channel=r[3], state=r[4],
            attempts=r[5], created_ts=r[6], sent_ts=r[7], delivered_ts=r[8], read_ts=r[9],
            failed_ts=r[10], last_error=r[11], username=r[12], center_id=r[13],
            history=[
                Attempt(at_ts=a[0], status_code=a[1], outcome=a[2], error=a[3])
                for a in tries.get(int(r[0]), [])
            ],
        )
        for r in rows
    ]  # fmt: skip
    return DeliveryPage(items=items)


@router.post(
    "/api/v1/webhooks", status_code=201, response_model=WebhookOut, responses=errors(401, 403, 422)
)
def register_webhook(
    body: WebhookIn, request: Request, conn: Conn, user: ActingUser, now: NowMs
) -> WebhookOut:
    """Register a webhook; its signing secret is returned this once."""
    url = check_target_url(request, body.url)
    if body.center_id is not None:
        if user.role is Role.FAMILY or not (
            user.role is Role.ADMIN or user.center_id == body.center_id
        ):
            raise HTTPException(403, "not allowed for this centre")
        owner: int | None = None
    elif user.role is not Role.FAMILY:
        raise HTTPException(422, "give the centre of the webhook")
    else:
        owner = user.id
    secret = new_secret()
    hook = notify_q.add_webhook(conn, owner, body.center_id, body.channel, url, secret, now)
    return _hook_out(hook, secret)


def _own_hooks(conn: Conn, user: CurrentUser) -> list[notify_q.Hook]:
    if user.role is Role.FAMILY:
        return [h for h in notify_q.webhooks(conn, user.id, []) if h.user_id == user.id]
    centers = None if user.role is Role.ADMIN else [user.center_id or ""]
    return [h for h in notify_q.webhooks(conn, None, centers) if h.center_id is not None]


@router.get("/api/v1/webhooks", response_model=list[WebhookOut], responses=errors(401))
def list_webhooks(conn: Conn, user: CurrentUser) -> list[WebhookOut]:
    """The user's webhooks (families), or their centre's (dispatchers; admins: all)."""
    return [_hook_out(h) for h in _own_hooks(conn, user)]


@router.delete("/api/v1/webhooks/{hook_id}", status_code=204, responses=errors(401, 403, 404))
def delete_webhook(
    hook_id: Annotated[int, Path(ge=1, le=2**62)], conn: Conn, user: ActingUser
) -> Response:
    """Remove one of the user's (or their centre's) webhooks."""
    if hook_id not in {h.id for h in _own_hooks(conn, user)}:
        raise HTTPException(404, "no such webhook")
    notify_q.delete_webhook(conn, hook_id)
    return Response(status_code=204)


@router.get(
    "/api/v1/alerts/{alert_id}/deliveries",
    response_model=DeliveryPage,
    responses=errors(401, 404, 422),
)
def alert_deliveries(alert_id: AlertId, conn: Conn, user: CurrentUser) -> DeliveryPage:
    """Who was told about this alert, by which channel, and how far each got: a family
    member sees their own, dispatchers and admins everyone's."""
    alert = alerts_q.get_alert(conn, alert_id)
    if alert is None or not user.sees_elder(alert.elder_id):
        raise HTTPException(404, "no such alert")
    own = user.id if user.role is Role.FAMILY else None
    return _deliveries(conn, notify_q.deliveries(conn, alert_id, own))


@router.get(
    "/api/v1/admin/notify/failed",
    response_model=DeliveryPage,
    responses=errors(401, 403, 422),
)
def failed_deliveries(
    conn: Conn,
    user: AdminUser,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryPage:
    """Deliveries that gave up (retries spent, subscription gone, target refused), newest
    first; `before_id` pages back."""
    return _deliveries(conn, notify_q.failed(conn, before_id, limit))
