"""Web Push subscriptions of the signed-in user, the VAPID key, and service-worker receipts."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from alerting.notify.settings import NotifySettings
from dashboard.deps import ActingUser, Conn, CurrentUser, NowMs
from dashboard.errors import errors
from dashboard.queries import notify as notify_q

router = APIRouter(prefix="/api/v1/push", tags=["push"])

# RFC 8291 §3.1/§4: a P-256 point (65 bytes) and a 16-byte secret, both base64url.
B64URL = r"^[A-Za-z0-9_-]+={0,2}$"
# Printable ASCII (RFC 3986 URIs): no spaces, control characters or NUL.
URL_CHARS = r"^[!-~]+$"


def notify_settings(request: Request) -> NotifySettings:
    """The notifier's settings (its rules for target URLs), built once per app."""
    cfg: NotifySettings | None = getattr(request.app.state, "notify_settings", None)
    if cfg is None:
        cfg = NotifySettings()
        request.app.state.notify_settings = cfg
    return cfg


def check_target_url(request: Request, url: str) -> str:
    """Only https targets (http to loopback when the notifier allows it for development).

    Raises:
        HTTPException: 422 for any other URL.
    """
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    allow_http = notify_settings(request).allow_http_loopback and loopback
    if not parts.hostname or not (
        parts.scheme == "https" or (parts.scheme == "http" and allow_http)
    ):
        raise HTTPException(422, "the URL must be https")
    return url


class VapidKeyOut(BaseModel):
    """The VAPID public key for `PushManager.subscribe({applicationServerKey})`."""

    public_key: str


class Keys(BaseModel):
    """The subscription's RFC 8291 keys."""

    p256dh: str = Field(min_length=80, max_length=100, pattern=B64URL)
    auth: str = Field(min_length=16, max_length=32, pattern=B64URL)


class SubscriptionIn(BaseModel):
    """A browser `PushSubscription` as `toJSON()` gives it."""

    endpoint: str = Field(min_length=10, max_length=2000, pattern=URL_CHARS)
    keys: Keys
    expirationTime: float | None = None  # the browser's own name


class EndpointIn(BaseModel):
    """Which subscription to remove."""

    endpoint: str = Field(min_length=10, max_length=2000, pattern=URL_CHARS)


class SubscriptionOut(BaseModel):
    """A stored subscription."""

    id: int
    endpoint: str
    user_agent: str
    created_ts: int


class ReceiptIn(BaseModel):
    """A service worker reporting a push it received or the user opened."""

    delivery_id: int = Field(ge=1, le=2**62)
    receipt: str = Field(min_length=8, max_length=64, pattern=B64URL)
    state: Literal["delivered", "read"]


@router.get("/vapid-public-key", response_model=VapidKeyOut, responses=errors(404))
def get_vapid_key(conn: Conn) -> VapidKeyOut:
    """The application server key (RFC 8292 §3.2), base64url: the one the notifier signs
    with, as it published it at start."""
    key = notify_q.vapid_public_key(conn)
    if key is None:
        raise HTTPException(404, "push is not set up: the notifier has not started yet")
    return VapidKeyOut(public_key=key)


@router.get("/subscriptions", response_model=list[SubscriptionOut], responses=errors(401))
def list_subscriptions(conn: Conn, user: CurrentUser) -> list[SubscriptionOut]:
    """The signed-in user's subscriptions, one per browser."""
    return [
        SubscriptionOut(id=i, endpoint=e, user_agent=a, created_ts=t)
        for i, e, a, t in notify_q.subscriptions(conn, user.id)
    ]


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=SubscriptionOut,
    responses=errors(401, 403, 422),
)
def subscribe(
    body: SubscriptionIn, request: Request, conn: Conn, user: ActingUser, now: NowMs
) -> SubscriptionOut:
    """Store this browser's subscription for the signed-in user."""
    endpoint = check_target_url(request, body.endpoint)
    agent = request.headers.get("user-agent", "")[:300]
    sub_id = notify_q.add_subscription(
        conn, user.id, endpoint, body.keys.p256dh, body.keys.auth, agent, now
    )
    return SubscriptionOut(id=sub_id, endpoint=endpoint, user_agent=agent, created_ts=now)


@router.delete("/subscriptions", status_code=204, responses=errors(401, 403, 404, 422))
def unsubscribe(body: EndpointIn, conn: Conn, user: ActingUser) -> Response:
    """Remove one of the user's subscriptions."""
    if not notify_q.delete_subscription(conn, user.id, body.endpoint):
        raise HTTPException(404, "no such subscription")
    return Response(status_code=204)


@router.post("/receipts", status_code=204, responses=errors(404, 422))
def push_receipt(body: ReceiptIn, conn: Conn, now: NowMs) -> Response:
    """Delivered or read, reported by the service worker with the token of the push itself
    (a capability: the encrypted payload is its only carrier, so no session is needed)."""
    if not notify_q.receipt(conn, body.delivery_id, body.receipt, body.state, now):
        raise HTTPException(404, "no such delivery")
    return Response(status_code=204)
