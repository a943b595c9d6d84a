"""Local durable outbox: alerts raised and moved while PostgreSQL is down (SQLite, I/O only).

While the database is unreachable the alert writer routes, publishes and escalates alerts in
memory and records each new alert state here before the device message is acknowledged: a
SQLite file in WAL mode with `synchronous=FULL`, so a record survives a SIGKILL of the service
and a power cut once `record` has returned (SQLite docs, "PRAGMA synchronous": FULL syncs the
WAL at every commit). When the database returns, `reconcile` stores what was recorded into
PostgreSQL idempotently and then forgets it; the service also calls it at start, so a run
killed during an outage is reconciled by the next one.

Idempotence: alert ids are stable and every recorded transition has a random key
(`{alert_id}/{64 random bits}`, unique across outbox files and processes) stored in
`alert_transitions.outbox_key` (migration 025), so replaying the same outbox twice stores
each alert and each transition once. A new alert whose (elder, kind) got an active alert
from another process meanwhile is merged into that one (the unique index
`alerts_one_active` allows one active alert per elder and kind): the other alert takes the
higher severity and the newer trigger time, ours is stored cancelled with "merged into
<id>", so the id that was published still resolves to a history.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import psycopg

from alerting import store
from alerting.lifecycle import ACTIVE, AlertRow
from alerting.model import severity_rank
from gateway.contract import AlertKind, AlertStatus, Severity

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
_ACTIVE = [s.value for s in ACTIVE]
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS alerts (alert_id TEXT PRIMARY KEY, row TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS transitions (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " key TEXT NOT NULL UNIQUE, alert_id TEXT NOT NULL, at_ts INTEGER NOT NULL,"
    " from_status TEXT, to_status TEXT NOT NULL, center_id TEXT NOT NULL,"
    " actor TEXT NOT NULL, note TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dead_letters (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " received_ms INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,"
    " reason TEXT NOT NULL, detail TEXT NOT NULL)",
)


def default_outbox_path(client_id: str) -> str:
    """`$XDG_STATE_HOME/eldercare/alerting-outbox-{client_id}.sqlite3`.

    `$XDG_STATE_HOME` defaults to `~/.local/state` (XDG Base Directory Specification 0.8).
    One file per MQTT client id: processes of different deployments (or tests) on one host
    never reconcile each other's alerts into the wrong database.
    """
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in client_id)
    return str(Path(state) / "eldercare" / f"alerting-outbox-{safe}.sqlite3")


@dataclass(frozen=True, slots=True)
class Transition:
    """One history entry of an alert, as `alert_transitions` keeps it."""

    from_status: AlertStatus | None
    actor: str
    note: str


def alert_to_json(alert: AlertRow) -> str:
    """An alert row as JSON (enums by value)."""
    data = asdict(alert)
    for key in ("kind", "severity", "status"):
        data[key] = data[key].value
    data["tried_centers"] = list(alert.tried_centers)
    return json.dumps(data)


def alert_from_json(text: str) -> AlertRow:
    """The inverse of `alert_to_json`."""
    data = json.loads(text)
    data["kind"] = AlertKind(data["kind"])
    data["severity"] = Severity(data["severity"])
    data["status"] = AlertStatus(data["status"])
    data["tried_centers"] = tuple(data["tried_centers"])
    return AlertRow(**data)


class Outbox:
    """The SQLite outbox at `path`.

    The file (and its directory) is created by the first record only: a service that never
    lost its database leaves nothing behind. Written by the service loop and read by the
    metrics thread, hence one lock around the connection.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        # (our alert as now stored, cancelled; the alert it was merged into) of the last
        # reconcile: both changed what a centre saw, so the caller publishes them.
        self.merged: list[tuple[AlertRow, AlertRow]] = []

    @property
    def _db(self) -> sqlite3.Connection:
        with self._lock:
            if self._conn is None:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                for ddl in _SCHEMA:
                    db.execute(ddl)
                self._conn = db
            return self._conn

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _exists(self) -> bool:
        return self._conn is not None or Path(self.path).exists()

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def record(self, alert: AlertRow, transition: Transition | None) -> None:
        """Durably keep the alert's current state (and the transition that led to it)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO alerts (alert_id, row) VALUES (?, ?)"
                " ON CONFLICT (alert_id) DO UPDATE SET row = excluded.row",
                (alert.alert_id, alert_to_json(alert)),
            )
            if transition is not None:
                self._db.execute(
                    "INSERT INTO transitions (key, alert_id, at_ts, from_status, to_status,"
                    " center_id, actor, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        f"{alert.alert_id}/{uuid.uuid4().hex[:16]}",
                        alert.alert_id,
                        alert.updated_ts,
                        transition.from_status.value if transition.from_status else None,
                        alert.status.value,
                        alert.center_id,
                        transition.actor,
                        transition.note,
                    ),
                )

    def dead_letter(
        self, received_ms: int, topic: str, payload: bytes, reason: str, detail: str
    ) -> None:
        """Durably keep a dead letter until the database takes it."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO dead_letters (received_ms, topic, payload, reason, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (received_ms, topic, payload, reason, detail),
            )

    def pending(self) -> list[AlertRow]:
        """Alerts recorded and not yet reconciled (their newest state), oldest first."""
        if not self._exists():
            return []
        rows = self._query("SELECT row FROM alerts ORDER BY rowid")
        return [alert_from_json(r[0]) for r in rows]

    def depth(self) -> int:
        """Alerts and dead letters waiting for the database."""
        if not self._exists():
            return 0
        rows = self._query(
            "SELECT (SELECT count(*) FROM alerts) + (SELECT count(*) FROM dead_letters)"
        )
        return int(rows[0][0])

    def reconcile(self, conn: Conn) -> list[AlertRow]:
        """Store everything recorded into PostgreSQL, then forget it here.

        Each alert is one PostgreSQL transaction; it is forgotten here only after that
        commit, so a crash in between replays it, which the keys make harmless.

        Returns:
            The alerts as stored (for a merged alert: the one it was merged into).

        Raises:
            psycopg.OperationalError: the database went away again (what was not yet
                reconciled stays here).
        """
        out: list[AlertRow] = []
        self.merged = []
        if not self._exists():
            return out
        for alert in self.pending():
            with conn.transaction():
                stored = _reconcile_alert(conn, alert)
                for key, t in self._transitions(alert.alert_id):
                    _insert_transition(conn, key, *t)
                if stored.alert_id != alert.alert_id:
                    _merged_transition(conn, alert, stored.alert_id)
                    note = f"merged into {stored.alert_id}"
                    closed = replace(
                        alert, status=AlertStatus.CANCELLED, closed_ts=alert.updated_ts, reason=note
                    )
                    self.merged.append((closed, stored))
            with self._lock, self._db:
                self._db.execute("DELETE FROM transitions WHERE alert_id = ?", (alert.alert_id,))
                self._db.execute("DELETE FROM alerts WHERE alert_id = ?", (alert.alert_id,))
            out.append(stored)
        self._reconcile_dead_letters(conn)
        if out:
            logger.info("reconciled %d alerts from the outbox %s", len(out), self.path)
        return out

    def _transitions(self, alert_id: str) -> list[tuple[str, tuple[Any, ...]]]:
        rows = self._query(
            "SELECT key, alert_id, at_ts, from_status, to_status, center_id, actor, note"
            " FROM transitions WHERE alert_id = ? ORDER BY seq",
            (alert_id,),
        )
        return [(r[0], tuple(r[1:])) for r in rows]

    def _reconcile_dead_letters(self, conn: Conn) -> None:
        rows = self._query(
            "SELECT seq, received_ms, topic, payload, reason, detail FROM dead_letters ORDER BY seq"
        )
        for seq, received_ms, topic, payload, reason, detail in rows:
            with conn.transaction():
                store_dead_letter(conn, received_ms, topic, bytes(payload), reason, detail)
            with self._lock, self._db:
                self._db.execute("DELETE FROM dead_letters WHERE seq = ?", (seq,))


def store_dead_letter(
    conn: Conn, received_ms: int, topic: str, payload: bytes, reason: str, detail: str
) -> None:
    """Insert one row into ingest's `dead_letters` (migration 003), not committed here."""
    conn.execute(
        "INSERT INTO dead_letters (received_at, topic, payload, reason, detail)"
        " VALUES (to_timestamp(%s / 1000.0), %s, %s, %s, %s)",
        (received_ms, topic, payload, reason, detail[:2000]),
    )


def _insert_transition(conn: Conn, key: str, *t: Any) -> None:
    conn.execute(
        "INSERT INTO alert_transitions (alert_id, at_ts, from_status, to_status, center_id,"
        " actor, note, outbox_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (outbox_key) WHERE outbox_key IS NOT NULL DO NOTHING",
        (*t, key),
    )


_FIELDS = (
    "kind, severity, status, elder_id, device_id, center_id, distance_m, in_coverage,"
    " over_capacity, lat, lon, event_ts, raised_ts, updated_ts, acked_ts, closed_ts, escalations,"
    " reason, routed_ts, tried_centers, last_event_ts"
)
_SET = ", ".join(f"{f.strip()} = %s" for f in _FIELDS.split(",")[1:])


def _values(alert: AlertRow) -> list[Any]:
    return [
        alert.kind.value,
        alert.severity.value,
        alert.status.value,
        alert.elder_id,
        alert.device_id,
        alert.center_id,
        alert.distance_m,
        alert.in_coverage,
        alert.over_capacity,
        alert.lat,
        alert.lon,
        alert.event_ts,
        alert.raised_ts,
        alert.updated_ts,
        alert.acked_ts,
        alert.closed_ts,
        alert.escalations,
        alert.reason,
        alert.routed_ts,
        list(alert.tried_centers),
        alert.last_event_ts,
    ]


def _update(conn: Conn, alert: AlertRow, stored: tuple[Any, ...]) -> None:
    """Store the recorded state of an alert PostgreSQL already has.

    What a person stored while this process could not reach the database wins: a close is
    never reopened, and an acknowledgement keeps its status and centre (only the trigger
    fields are taken: a higher severity, the position, the newest trigger time). Otherwise
    the newer state is stored.

    Args:
        conn: the connection (in the caller's transaction).
        alert: the state recorded in the outbox.
        stored: (status, updated_ts, acked_ts, severity) as PostgreSQL has them.
    """
    status, updated_ts, acked_ts, severity = stored
    if AlertStatus(status) not in ACTIVE:
        return
    if alert.active and acked_ts is not None and alert.acked_ts is None:
        up = severity_rank(alert.severity) > severity_rank(Severity(severity))
        conn.execute(
            "UPDATE alerts SET severity = %s, lat = %s, lon = %s,"
            " last_event_ts = greatest(last_event_ts, %s) WHERE alert_id = %s",
            (
                alert.severity.value if up else severity,
                alert.lat,
                alert.lon,
                alert.last_event_ts,
                alert.alert_id,
            ),
        )
    elif int(updated_ts) <= alert.updated_ts:
        conn.execute(
            f"UPDATE alerts SET {_SET} WHERE alert_id = %s", (*_values(alert)[1:], alert.alert_id)
        )


def _reconcile_alert(conn: Conn, alert: AlertRow) -> AlertRow:
    row = conn.execute(
        "SELECT status, updated_ts, acked_ts, severity FROM alerts WHERE alert_id = %s FOR UPDATE",
        (alert.alert_id,),
    ).fetchone()
    if row is not None:
        _update(conn, alert, tuple(row))
        return alert
    inserted = conn.execute(
        f"INSERT INTO alerts (alert_id, {_FIELDS}) VALUES ({', '.join(['%s'] * 22)})"
        " ON CONFLICT (elder_id, kind) WHERE status IN ('open', 'acknowledged', 'escalated')"
        " DO NOTHING RETURNING alert_id",
        (alert.alert_id, *_values(alert)),
    ).fetchone()
    if inserted is not None:
        return alert
    return _merge(conn, alert)


def _merge(conn: Conn, alert: AlertRow) -> AlertRow:
    """Fold `alert` into the active alert of its (elder, kind) raised by another process."""
    other = conn.execute(
        f"SELECT {store.COLUMNS} FROM alerts WHERE elder_id = %s AND kind = %s"
        " AND status = ANY(%s) FOR UPDATE",
        (alert.elder_id, alert.kind.value, _ACTIVE),
    ).fetchone()
    assert other is not None, "the unique active index reported a conflict"
    target = store.row_to_alert(other)
    up = severity_rank(alert.severity) > severity_rank(target.severity)
    row = conn.execute(
        "UPDATE alerts SET severity = %s, last_event_ts = greatest(last_event_ts, %s),"
        f" updated_ts = greatest(updated_ts, %s) WHERE alert_id = %s RETURNING {store.COLUMNS}",
        (
            (alert.severity if up else target.severity).value,
            alert.last_event_ts,
            alert.updated_ts,
            target.alert_id,
        ),
    ).fetchone()
    assert row is not None
    target = store.row_to_alert(row)
    note = f"merged into {target.alert_id}"
    closed = replace(alert, status=AlertStatus.CANCELLED, closed_ts=alert.updated_ts, reason=note)
    conn.execute(
        f"INSERT INTO alerts (alert_id, {_FIELDS}) VALUES ({', '.join(['%s'] * 22)})",
        (closed.alert_id, *_values(closed)),
    )
    logger.warning("outbox alert %s %s", alert.alert_id, note)
    return target


def _merged_transition(conn: Conn, alert: AlertRow, into: str) -> None:
    _insert_transition(
        conn,
        f"{alert.alert_id}/merged",
        alert.alert_id,
        alert.updated_ts,
        alert.status.value,
        AlertStatus.CANCELLED.value,
        alert.center_id,
        "system",
        f"merged into {into}",
    )
