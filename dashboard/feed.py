"""Fan-out of the live alert feed: one listener wakes one reader, which fills client queues.

The database is the source of truth: a notification (`pg_notify` at commit, see migration
030) or the poll timer only wakes the reader, which reads every event after the last one it
handed out. Each client has a bounded queue; a client that falls behind is dropped (its
queue emptied at once, the connection closed with 1013) and resumes with `?after=` on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from dashboard.accounts import User
from dashboard.queries import feed as feed_q

logger = logging.getLogger(__name__)

CHANNEL = "alert_feed"
# Notified with the hex SHA-256 of a session's token when it ends (migration 032).
SESSION_CHANNEL = "session_end"


@dataclass(eq=False)
class Subscriber:
    """One connected client: who it is, where its live events start, its bounded queue."""

    user: User
    start_id: int
    queue: asyncio.Queue[tuple[int, str]]
    # Set when the client must go: it fell behind (`dropped`) or the feed is stopping.
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False
    signed_out: bool = False

    def offer(self, event_id: int, text: str) -> None:
        """Queue a live event; on overflow drop the client and free its queue at once."""
        if self.gone.is_set():
            return
        try:
            self.queue.put_nowait((event_id, text))
        except asyncio.QueueFull:
            self.dropped = True
            self.end()

    def end(self) -> None:
        """Tell the client's handler to close, discarding what is queued."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.gone.set()


class FeedHub:
    """The live feed of one dashboard process."""

    def __init__(
        self,
        pool: ConnectionPool[Any],
        listen: Callable[[], Any],
        *,
        queue_max: int,
        page: int,
        poll_s: float,
        close_wait_s: float = 5.0,
    ) -> None:
        """Args:
        pool: connections for reading events.
        listen: opens the dedicated LISTEN connection (an awaitable of AsyncConnection).
        queue_max: events a client may have queued before it is dropped.
        page: events per read.
        poll_s: read at least this often even without a notification.
        close_wait_s: how long a dropped client gets to take its close frame.
        """
        self.pool = pool
        self._listen_factory = listen
        self.queue_max = queue_max
        self.page = page
        self.poll_s = poll_s
        self.close_wait_s = close_wait_s
        self.head = 0
        self.subscribers: set[Subscriber] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Read the current head and start the listener and the reader."""
        self.head = await asyncio.to_thread(self._read_head)
        self._tasks = [
            asyncio.create_task(self._listen(), name="feed-listen"),
            asyncio.create_task(self._fan_out(), name="feed-fan-out"),
        ]

    async def stop(self) -> None:
        """Stop both tasks and tell every client to go."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub in list(self.subscribers):
            sub.end()

    def subscribe(self, user: User) -> Subscriber:
        """Register a client: it gets every live event after the current head."""
        sub = Subscriber(user, self.head, asyncio.Queue(self.queue_max))
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a client."""
        self.subscribers.discard(sub)

    def end_session(self, token_hash_hex: str) -> None:
        """Close every client of a session that ended (sign-out, disabled, new password)."""
        for sub in list(self.subscribers):
            if sub.user.session_hash.hex() == token_hash_hex:
                sub.signed_out = True
                sub.end()

    def wake(self) -> None:
        """Make the reader look for new events now."""
        self._wake.set()

    def _read_head(self) -> int:
        with self.pool.connection() as conn:
            return feed_q.head(conn)

    def _read(self, after: int) -> list[feed_q.FeedRow]:
        with self.pool.connection() as conn:
            return feed_q.events_after(conn, after, self.page)

    async def _fan_out(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            try:
                await self._drain()
            except psycopg.Error as exc:
                logger.warning("feed: reading events failed (%s); retrying", exc)

    async def _drain(self) -> None:
        while True:
            rows = await asyncio.to_thread(self._read, self.head)
            for row in rows:
                for sub in list(self.subscribers):
                    if sub.user.sees_elder(row.elder_id):
                        sub.offer(row.event_id, row.text)
                self.head = row.event_id
            if len(rows) < self.page:
                return

    async def _listen(self) -> None:
        backoff_s = 0.5
        while True:
            try:
                conn = await self._listen_factory()
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await conn.execute(f"LISTEN {SESSION_CHANNEL}")
                    backoff_s = 0.5
                    self.wake()  # events committed while not listening
                    async for note in conn.notifies():
                        if note.channel == SESSION_CHANNEL:
                            self.end_session(note.payload)
                        else:
                            self.wake()
            except psycopg.Error as exc:
                logger.warning("feed: LISTEN connection lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)
