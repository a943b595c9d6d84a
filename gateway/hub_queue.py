"""The home hub's durable outbound queue: SQLite in WAL mode with `synchronous=FULL` (I/O only).

SQLite rather than a hand-written log: a committed transaction survives a process kill and a
power cut, and the queue needs ordered reads, deletes by id and a byte total, which SQL gives.
WAL lets the reader (the uplink) and the writer (the local side) work without blocking each
other. `synchronous=FULL` fsyncs the WAL at every commit (sqlite.org/pragma.html#pragma_
synchronous): in WAL mode NORMAL keeps a committed transaction across a process crash but may
lose it at a power cut, and the hub acknowledges a device's QoS 1 message only after the
commit, so the commit must be on disk. One fsync per drained batch keeps it cheap on a flash
card.

Bounding: when the stored payload bytes pass `max_bytes`, the oldest droppable rows (routine
telemetry) go first; events and statuses are never dropped, so with only those left the queue
may exceed the bound rather than lose an SOS, an alarm or an online/offline change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, topic TEXT NOT NULL,"
    " payload BLOB NOT NULL, retain INTEGER NOT NULL, droppable INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS outbox_droppable ON outbox (droppable, id)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO counters VALUES ('dropped', 0), ('refused', 0)",
)


@dataclass(frozen=True, slots=True)
class Queued:
    """One message waiting for the uplink.

    Attributes:
        id: its place in the queue (increasing in arrival order).
        device_id: the device that sent it.
        topic: the upstream topic (with the upstream prefix).
        payload: the device's bytes, unchanged.
        retain: whether to publish it retained (status, contract §1).
        droppable: routine telemetry that may go when storage is full.
    """

    id: int
    device_id: str
    topic: str
    payload: bytes
    retain: bool
    droppable: bool


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message to store (see Queued)."""

    device_id: str
    topic: str
    payload: bytes
    retain: bool
    droppable: bool


class HubQueue:
    """An ordered, bounded, crash-safe queue of messages for the uplink."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        """Open (or create) the queue at `path`, bounded to `max_bytes` of payload."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self.max_bytes = max_bytes

    def close(self) -> None:
        """Close the database (every commit is already on disk)."""
        self._db.close()

    def add(self, items: Sequence[Incoming]) -> int:
        """Store `items` in one transaction, then enforce the bound.

        Returns:
            How many routine telemetry messages were dropped to stay within the bound.
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO outbox (device_id, topic, payload, retain, droppable)"
                " VALUES (?, ?, ?, ?, ?)",
                [(i.device_id, i.topic, i.payload, int(i.retain), int(i.droppable)) for i in items],
            )
            dropped = self._trim()
            db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (dropped,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return dropped

    def _trim(self) -> int:
        excess = self.stored_bytes() - self.max_bytes
        dropped = 0
        while excess > 0:
            rows = self._db.execute(
                "SELECT id, length(payload) FROM outbox WHERE droppable = 1 ORDER BY id LIMIT 256"
            ).fetchall()
            if not rows:
                break
            ids = []
            for row_id, size in rows:
                if excess <= 0:
                    break
                ids.append((row_id,))
                excess -= size
            self._db.executemany("DELETE FROM outbox WHERE id = ?", ids)
            dropped += len(ids)
        return dropped

    def pending(self, after_id: int, limit: int) -> list[Queued]:
        """Up to `limit` messages after `after_id`, oldest first."""
        rows = self._db.execute(
            "SELECT id, device_id, topic, payload, retain, droppable FROM outbox"
            " WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [Queued(r[0], r[1], r[2], bytes(r[3]), bool(r[4]), bool(r[5])) for r in rows]

    def delete(self, ids: Sequence[int], refused: int = 0) -> None:
        """Remove delivered messages (and count those the broker refused)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
        db.execute("UPDATE counters SET value = value + ? WHERE name = 'refused'", (refused,))
        db.execute("COMMIT")

    def depth(self) -> int:
        """Messages waiting."""
        return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def stored_bytes(self) -> int:
        """Payload bytes waiting."""
        return int(
            self._db.execute("SELECT coalesce(sum(length(payload)), 0) FROM outbox").fetchone()[0]
        )

    def counter(self, name: str) -> int:
        """`dropped` (routine telemetry dropped when full) or `refused` (denied upstream)."""
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0
