"""The live alert feed: websocket `/api/v1/feed?after=EVENT_ID`, resumable by event id."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from psycopg_pool import ConnectionPool

from dashboard.accounts import Role, User, token_hash
from dashboard.deps import SESSION_COOKIE
from dashboard.feed import FeedHub, Subscriber
from dashboard.queries import feed as feed_q
from dashboard.queries import users as users_q
from dashboard.settings import DashboardSettings

router = APIRouter(tags=["feed"])

# RFC 6455 §7.4.2 leaves 4000-4999 to applications: these mirror HTTP 401 and 403.
CLOSE_UNAUTHORISED = 4401
CLOSE_FORBIDDEN = 4403
# RFC 6455 §7.4.1 1013 "try again later": the client fell behind and should resume.
CLOSE_TRY_AGAIN = 1013


def _session_user(ws: WebSocket) -> User | None:
    token = ws.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    settings: DashboardSettings = ws.app.state.settings
    pool: ConnectionPool[Any] = ws.app.state.pool
    with pool.connection() as conn:
        return users_q.session_user(
            conn, token_hash(token), ws.app.state.clock(), settings.session_idle_s * 1000
        )


def _same_origin(ws: WebSocket) -> bool:
    """Browsers send Origin on websocket handshakes; another site's page must not ride the
    session cookie (cross-site websocket hijacking)."""
    origin = ws.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == ws.headers.get("host")


@router.websocket("/api/v1/feed")
async def feed(ws: WebSocket, after: int | None = None) -> None:
    """Backlog after `after` (when given), then live events; one JSON FeedEvent per message.

    Closes with 4401 without a session or when it ends, 4403 from another origin, 1013 when
    the client cannot keep up (it resumes with `?after=` its last event id).
    """
    user = await asyncio.to_thread(_session_user, ws)
    await ws.accept()
    if user is None:
        await ws.close(CLOSE_UNAUTHORISED, "not logged in")
        return
    if not _same_origin(ws) or (after is not None and not 0 <= after < 2**63):
        await ws.close(CLOSE_FORBIDDEN, "forbidden")
        return
    hub: FeedHub = ws.app.state.hub
    sub = hub.subscribe(user)
    tasks = {
        asyncio.create_task(_send(ws, hub, sub, sub.start_id if after is None else after)),
        asyncio.create_task(_read_until_closed(ws)),
        asyncio.create_task(sub.gone.wait()),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unsubscribe(sub)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError):
                await task  # collect every outcome (a client gone mid-send is no error)
    if sub.signed_out:
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
            await ws.close(CLOSE_UNAUTHORISED, "signed out")
    elif sub.dropped:
        # A client that does not read at all would block the close frame forever; past the
        # wait, the server drops the connection (its keepalive ping goes unanswered).
        with contextlib.suppress(TimeoutError, WebSocketDisconnect, OSError, RuntimeError):
            await asyncio.wait_for(
                ws.close(CLOSE_TRY_AGAIN, "too slow: resume with ?after="),
                hub.close_wait_s,
            )


async def _send(ws: WebSocket, hub: FeedHub, sub: Subscriber, last: int) -> None:
    """The backlog in (last, sub.start_id], then the live events as they come."""
    elders = list(sub.user.elder_ids) if sub.user.role is Role.FAMILY else None
    while last < sub.start_id:
        rows = await asyncio.to_thread(_read, hub, last, sub.start_id, elders)
        if not rows:
            break
        for row in rows:
            await ws.send_text(row.text)
            last = row.event_id
    while True:
        event_id, text = await sub.queue.get()
        if event_id > last:  # not already sent from the backlog
            await ws.send_text(text)
            last = event_id


def _read(hub: FeedHub, after: int, upto: int, elders: list[str] | None) -> list[feed_q.FeedRow]:
    with hub.pool.connection() as conn:
        return feed_q.events_after(conn, after, hub.page, upto_id=upto, elder_ids=elders)


async def _read_until_closed(ws: WebSocket) -> None:
    """Consume (and ignore) client messages until the client goes."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
