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
# While stopping, tasks not yet ended are cancelled again this often: a cancellation that
# lands just as a task's wait completes can be lost (asyncio.wait_for of Python 3.11, and any
# library code that catches CancelledError), and one more cancel ends the task.
_RECANCEL_S = 0.2


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
        listen_wait_s: float = 1.0,
    ) -> None:
        """Args:
        pool: connections for reading events.
        listen: opens the dedicated LISTEN connection (an awaitable of AsyncConnection).
        queue_max: events a client may have queued before it is dropped.
        page: events per read.
        poll_s: read at least this often even without a notification.
        close_wait_s: how long a dropped client gets to take its close frame.
        listen_wait_s: longest wait for a notification before the listener checks whether
            the feed is stopping (a notification arriving meanwhile stays in the socket).
        """
        self.pool = pool
        self._listen_factory = listen
        self.queue_max = queue_max
        self.page = page
        self.poll_s = poll_s
        self.close_wait_s = close_wait_s
        self.listen_wait_s = listen_wait_s
        self.head = 0
        self.subscribers: set[Subscriber] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Read the current head and start the listener and the reader."""
        self.head = await asyncio.to_thread(self._read_head)
        self._tasks = [
            asyncio.create_task(self._listen(), name="feed-listen"),
            asyncio.create_task(self._fan_out(), name="feed-fan-out"),
        ]

    async def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop both tasks within `timeout_s` and tell every client to go.

        Both tasks also end by themselves once they see the stop flag, and a task whose
        cancellation was lost is cancelled again, so a stop never waits on one forever.

        Returns:
            Whether both tasks ended in time (a task still running is logged and left).
        """
        self._stopping.set()
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pending = {task for task in self._tasks if not task.done()}
        while pending and (left := deadline - loop.time()) > 0:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=min(left, _RECANCEL_S))
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                logger.warning("feed: task %s failed: %r", task.get_name(), task.exception())
        for sub in list(self.subscribers):
            sub.end()
        if pending:
            names = sorted(task.get_name() for task in pending)
            logger.warning("feed: %s still running %.1f s after stop", names, timeout_s)
        return not pending

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
        # `asyncio.timeout`, not `asyncio.wait_for`: on Python 3.11, wait_for returns normally
        # when it is cancelled just after its inner wait completed, losing the cancellation.
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            if self._stopping.is_set():
                return
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
        while not self._stopping.is_set():
            try:
                conn = await self._listen_factory()
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await conn.execute(f"LISTEN {SESSION_CHANNEL}")
                    backoff_s = 0.5
                    self.wake()  # events committed while not listening
                    await self._relay(conn)
            except psycopg.Error as exc:
                if self._stopping.is_set():
                    return
                logger.warning("feed: LISTEN connection lost (%s); reconnecting", exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff_s):
                        await self._stopping.wait()
                backoff_s = min(backoff_s * 2, 30.0)

    async def _relay(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Hand notifications on until the feed stops, never waiting longer than
        `listen_wait_s` without looking at the stop flag."""
        while not self._stopping.is_set():
            async for note in conn.notifies(timeout=self.listen_wait_s):
                if note.channel == SESSION_CHANNEL:
                    self.end_session(note.payload)
                else:
                    self.wake()
