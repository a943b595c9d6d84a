"""PostgreSQL adapter of the alert lifecycle: conditional UPDATEs usable from any process."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from alerting.lifecycle import (
    ACTIVE,
    ALLOWED_FROM,
    CLOSED,
    WEARER_CANCELLABLE,
    AlertRow,
    TransitionError,
)
from alerting.model import Raise, severity_rank
from gateway.contract import AlertKind, AlertStatus, Severity
from gateway.geo import distance_m

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
COLUMNS = (
    "alert_id, kind, severity, status, elder_id, device_id, center_id, distance_m, in_coverage,"
    " over_capacity, lat, lon, event_ts, raised_ts, updated_ts, acked_ts, closed_ts, escalations,"
    " reason, coalesce(routed_ts, raised_ts), tried_centers, coalesce(last_event_ts, event_ts),"
    " event_seq, trigger_count"
)
_A_COLUMNS = (
    "a.alert_id, a.kind, a.severity, a.status, a.elder_id, a.device_id, a.center_id,"
    " a.distance_m, a.in_coverage, a.over_capacity, a.lat, a.lon, a.event_ts, a.raised_ts,"
    " a.updated_ts, a.acked_ts, a.closed_ts, a.escalations, a.reason,"
    " coalesce(a.routed_ts, a.raised_ts), a.tried_centers, coalesce(a.last_event_ts, a.event_ts),"
    " a.event_seq, a.trigger_count"
)
_ACTIVE = [s.value for s in ACTIVE]
_CLOSED = [s.value for s in CLOSED]
# Triggers raise_alert suppressed in this process, by reason (message_replayed,
# condition_covered, closed_episode).
SUPPRESSED: dict[str, int] = {}
# How long a message identity stays on record against replays: a restart's catch-up, the
# broker's session expiry and a gateway's buffer all fall well inside a day.
IDENTITY_WINDOW_MS = 24 * 3600 * 1000
# Conditions found on a clock tick (no message caused them): a restart that finds the same
# condition finds the same start, and an alert raised after that start already covered it.
_CONDITION_KINDS = frozenset({AlertKind.DEVICE_OFFLINE, AlertKind.INACTIVITY})
# A refresh moving the alert by more than this changes what staff see (a GPS fix of a wrist
# band is good to ~10 m in the open; the district reference data).
MOVED_M = 20.0


def row_to_alert(row: Sequence[Any]) -> AlertRow:
    """Build an AlertRow from a row selected with COLUMNS."""
    return AlertRow(
        alert_id=row[0],
        kind=AlertKind(row[1]),
        severity=Severity(row[2]),
        status=AlertStatus(row[3]),
        elder_id=row[4],
        device_id=row[5],
        center_id=row[6],
        distance_m=float(row[7]),
        in_coverage=bool(row[8]),
        over_capacity=bool(row[9]),
        lat=float(row[10]),
        lon=float(row[11]),
        event_ts=int(row[12]),
        raised_ts=int(row[13]),
        updated_ts=int(row[14]),
        acked_ts=row[15],
        closed_ts=row[16],
        escalations=int(row[17]),
        reason=row[18],
        routed_ts=int(row[19]),
        tried_centers=tuple(row[20] or ()),
        last_event_ts=int(row[21]),
        event_seq=None if row[22] is None else int(row[22]),
        trigger_count=int(row[23]),
    )


def new_alert_id() -> str:
    """A fresh alert id."""
    return f"al-{uuid.uuid4().hex[:20]}"


def _transition_row(
    conn: Conn, alert: AlertRow, from_status: AlertStatus | None, actor: str, note: str
) -> None:
    conn.execute(
        "INSERT INTO alert_transitions (alert_id, at_ts, from_status, to_status, center_id, actor,"
        " note) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            alert.alert_id,
            alert.updated_ts,
            from_status.value if from_status else None,
            alert.status.value,
            alert.center_id,
            actor,
            note,
        ),
    )


Route = Callable[[float, float], tuple[str, float, bool, bool]]
Locate = Callable[[str, float, float], tuple[float, bool]]


def raise_alert(
    conn: Conn, action: Raise, route: Route, locate: Locate, now_ms: int
) -> tuple[AlertRow, bool, bool] | None:
    """Raise a new alert, or refresh the active one of the same elder and kind.

    Args:
        conn: a connection (the work is committed here).
        action: what to raise.
        route: (lat, lon) -> (center_id, distance_m, in_coverage, over_capacity), for a new alert.
        locate: (center_id, lat, lon) -> (distance_m, in_coverage), for a refreshed position.
        now_ms: the platform clock.

    Returns:
        (alert, created, changed) where `changed` says a refresh changed what staff see
        (severity up, or a move of more than `MOVED_M`), or None when the trigger is
        suppressed: the message that caused it (same device, `ts` and `seq`) already raised
        an alert of this kind within `IDENTITY_WINDOW_MS`; for a condition found on a
        clock tick (a device's silence, an elder's inactivity), an alert of it was raised
        after the condition began; or the trigger's episode (`Trigger.episode_ts`) already
        raised an alert of this device and kind that was closed, so staff are not paged
        again while the condition they dealt with lasts (the detector starts a new episode
        once it clears). An active alert is always refreshed. Each suppression is logged at
        WARNING and counted in `SUPPRESSED`.
    """
    trig = action.trigger
    with conn.transaction():
        covered = _raised_by_message(conn, action, now_ms)
        if covered is None:
            active = _lock_active(conn, action.elder_id, trig.kind)
            if active is not None:
                return _refresh(conn, active, action, locate, now_ms)
            covered = _raised_for_condition(conn, action, now_ms)
            if covered is None:
                covered = _closed_episode(conn, action)
                if covered is not None:
                    _count("closed_episode")
                    logger.warning(
                        "suppressed %s trigger of %s (episode since %d): its alert %s was"
                        " closed while the condition lasts",
                        trig.kind.value,
                        trig.device_id,
                        trig.episode_ts,
                        covered,
                    )
                    return None
            else:
                _count("condition_covered")
        else:
            _count("message_replayed")
        if covered is not None:
            logger.warning(
                "suppressed %s trigger of %s (ts=%d seq=%s): already raised as %s",
                trig.kind.value,
                trig.device_id,
                trig.event_ts,
                trig.event_seq,
                covered,
            )
            return None
        inserted = _insert(conn, action, route(action.lat, action.lon), now_ms)
        if inserted is None:
            # Another process raised it between our SELECT and INSERT: refresh theirs.
            active = _lock_active(conn, action.elder_id, trig.kind)
            assert active is not None
            return _refresh(conn, active, action, locate, now_ms)
        _transition_row(conn, inserted, None, trig.device_id, trig.reason)
        return inserted, True, True


def _raised_by_message(conn: Conn, action: Raise, now_ms: int) -> str | None:
    """The alert this trigger's message (device_id, ts, seq) already raised, if any."""
    trig = action.trigger
    if trig.event_seq is None:
        return None
    row = conn.execute(
        "SELECT alert_id FROM alerts WHERE device_id = %s AND event_ts = %s AND event_seq = %s"
        " AND kind = %s AND raised_ts >= %s LIMIT 1",
        (
            trig.device_id,
            trig.event_ts,
            trig.event_seq,
            trig.kind.value,
            now_ms - IDENTITY_WINDOW_MS,
        ),
    ).fetchone()
    return str(row[0]) if row else None


def _raised_for_condition(conn: Conn, action: Raise, now_ms: int) -> str | None:
    """For a tick-found condition: an alert of it raised after it began.

    Inactivity is the elder's condition; a silence is its device's (another device's
    offline alert, closed when that one came back, never covers it).
    """
    trig = action.trigger
    if trig.event_seq is not None or trig.kind not in _CONDITION_KINDS:
        return None
    device_id = trig.device_id if trig.kind is AlertKind.DEVICE_OFFLINE else None
    row = conn.execute(
        "SELECT alert_id FROM alerts WHERE elder_id = %s AND kind = %s AND raised_ts > %s"
        " AND raised_ts >= %s AND (%s::text IS NULL OR device_id = %s::text)"
        " ORDER BY raised_ts DESC LIMIT 1",
        (
            action.elder_id,
            trig.kind.value,
            trig.event_ts,
            now_ms - IDENTITY_WINDOW_MS,
            device_id,
            device_id,
        ),
    ).fetchone()
    return str(row[0]) if row else None


def _closed_episode(conn: Conn, action: Raise) -> str | None:
    """The closed alert this trigger's episode (device, kind, start) already raised, if any."""
    trig = action.trigger
    if trig.episode_ts is None:
        return None
    row = conn.execute(
        "SELECT alert_id FROM alerts WHERE device_id = %s AND kind = %s AND episode_ts = %s"
        " AND elder_id = %s AND status = ANY(%s) ORDER BY raised_ts DESC LIMIT 1",
        (trig.device_id, trig.kind.value, trig.episode_ts, action.elder_id, _CLOSED),
    ).fetchone()
    return str(row[0]) if row else None


def _count(reason: str) -> None:
    SUPPRESSED[reason] = SUPPRESSED.get(reason, 0) + 1


def _lock_active(conn: Conn, elder_id: str, kind: AlertKind) -> AlertRow | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM alerts WHERE elder_id = %s AND kind = %s"
        " AND status = ANY(%s) FOR UPDATE",
        (elder_id, kind.value, _ACTIVE),
    ).fetchone()
    return row_to_alert(row) if row else None


def _insert(
    conn: Conn, action: Raise, routed: tuple[str, float, bool, bool], now_ms: int
) -> AlertRow | None:
    trig = action.trigger
    center_id, dist_m, in_cov, over = routed
    inserted = conn.execute(
        "INSERT INTO alerts (alert_id, kind, severity, status, elder_id, device_id, center_id,"
        " distance_m, in_coverage, over_capacity, lat, lon, event_ts, raised_ts, updated_ts,"
        " reason, routed_ts, tried_centers, last_event_ts, event_seq, episode_ts)"
        " VALUES (%s, %s, %s, 'open', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s, %s, %s)"
        " ON CONFLICT (elder_id, kind) WHERE status IN ('open', 'acknowledged', 'escalated')"
        f" DO NOTHING RETURNING {COLUMNS}",
        (
            new_alert_id(),
            trig.kind.value,
            trig.severity.value,
            action.elder_id,
            trig.device_id,
            center_id,
            dist_m,
            in_cov,
            over,
            action.lat,
            action.lon,
            trig.event_ts,
            now_ms,
            now_ms,
            trig.reason,
            now_ms,
            [center_id],
            trig.event_ts,
            trig.event_seq,
            trig.episode_ts,
        ),
    ).fetchone()
    return row_to_alert(inserted) if inserted else None


def _refresh(
    conn: Conn, alert: AlertRow, action: Raise, locate: Locate, now_ms: int
) -> tuple[AlertRow, bool, bool]:
    trig = action.trigger
    up = severity_rank(trig.severity) > severity_rank(alert.severity)
    severity = trig.severity if up else alert.severity
    moved = distance_m(alert.lat, alert.lon, action.lat, action.lon) > MOVED_M
    dist_m, in_cov = locate(alert.center_id, action.lat, action.lon)
    row = conn.execute(
        "UPDATE alerts SET severity = %s, lat = %s, lon = %s, distance_m = %s, in_coverage = %s,"
        " reason = %s, updated_ts = %s, last_event_ts = greatest(last_event_ts, %s),"
        " trigger_count = trigger_count + 1,"
        # The episode its own device is in now (a restart's detector starts a new one):
        # what a person closing it dealt with.
        " episode_ts = CASE WHEN device_id = %s THEN coalesce(%s, episode_ts)"
        "   ELSE episode_ts END"
        f" WHERE alert_id = %s RETURNING {COLUMNS}",
        (
            severity.value,
            action.lat,
            action.lon,
            dist_m,
            in_cov,
            trig.reason,
            now_ms,
            trig.event_ts,
            trig.device_id,
            trig.episode_ts,
            alert.alert_id,
        ),
    ).fetchone()
    assert row is not None
    return row_to_alert(row), False, up or moved


def transition(
    conn: Conn,
    alert_id: str,
    target: AlertStatus,
    actor: str,
    note: str,
    now_ms: int,
    *,
    center: tuple[str, float, bool, bool] | None = None,
    escalate: bool = False,
    only_from: Sequence[AlertStatus] | None = None,
) -> AlertRow:
    """Move one alert to `target` with a conditional UPDATE, storing the transition.

    Args:
        conn: a connection (committed here).
        alert_id: the alert.
        target: the new status.
        actor: who ("system", a dispatcher id, a device id).
        note: free text kept in the history.
        now_ms: the platform clock.
        center: a new (center_id, distance_m, in_coverage, over_capacity) when re-routed.
        escalate: count an escalation.
        only_from: narrow the statuses the transition may start from (checked atomically).

    Raises:
        TransitionError: the alert does not exist or its status does not allow it.
        ValueError: `actor` is blank: the history must say who.
    """
    _check_actor(actor)
    allowed = [s.value for s in ALLOWED_FROM.get(target, ())]
    if target is AlertStatus.ESCALATED and center is not None:
        allowed = _ACTIVE
    if only_from is not None:
        allowed = [s for s in allowed if s in {f.value for f in only_from}]
    cid, dist, cov, over = center if center else (None, None, None, None)
    params = {
        "id": alert_id,
        "allowed": allowed,
        "to": target.value,
        "now": now_ms,
        "esc": int(escalate),
        "cid": cid,
        "dist": dist,
        "cov": cov,
        "over": over,
        "moved": center is not None,
    }
    with conn.transaction():
        row = conn.execute(_TRANSITION_SQL, params).fetchone()
        if row is None:
            current = conn.execute(
                "SELECT status FROM alerts WHERE alert_id = %s", (alert_id,)
            ).fetchone()
            if current is None:
                raise TransitionError(f"no alert {alert_id}")
            raise TransitionError(f"alert {alert_id} is {current[0]}, cannot become {target.value}")
        alert = row_to_alert(row[1:])
        _transition_row(conn, alert, AlertStatus(row[0]), actor, note)
        return alert


# The conditional UPDATE: it only applies when the stored status allows the transition, so
# any number of processes (service, CLI, dashboard) can race on the same alert safely.
_TRANSITION_SQL = (
    "WITH old AS (SELECT alert_id, status FROM alerts WHERE alert_id = %(id)s FOR UPDATE)"
    " UPDATE alerts AS a SET status = %(to)s, updated_ts = %(now)s,"
    " acked_ts = CASE WHEN %(to)s = 'acknowledged' THEN coalesce(a.acked_ts, %(now)s)"
    "   ELSE a.acked_ts END,"
    " closed_ts = CASE WHEN %(to)s IN ('resolved', 'cancelled') THEN %(now)s"
    "   ELSE a.closed_ts END,"
    " escalations = a.escalations + %(esc)s,"
    " center_id = coalesce(%(cid)s, a.center_id), distance_m = coalesce(%(dist)s, a.distance_m),"
    " in_coverage = coalesce(%(cov)s, a.in_coverage),"
    " over_capacity = coalesce(%(over)s, a.over_capacity),"
    " routed_ts = CASE WHEN %(moved)s THEN %(now)s ELSE a.routed_ts END,"
    " tried_centers = CASE WHEN %(cid)s::text IS NULL OR %(cid)s::text = ANY(a.tried_centers)"
    "   THEN a.tried_centers ELSE array_append(a.tried_centers, %(cid)s::text) END"
    " FROM old WHERE a.alert_id = old.alert_id AND old.status = ANY(%(allowed)s)"
    f" RETURNING old.status, {_A_COLUMNS}"
)


def _check_actor(actor: str) -> None:
    if not actor or not actor.strip():
        raise ValueError("a transition needs an actor: who did it")


def remind(conn: Conn, alert_id: str, now_ms: int, note: str) -> AlertRow | None:
    """Record a reminder of an unanswered alert (status unchanged, history kept)."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE alerts SET routed_ts = %s, updated_ts = %s"
            f" WHERE alert_id = %s AND status = ANY(%s) RETURNING {COLUMNS}",
            (now_ms, now_ms, alert_id, _ACTIVE),
        ).fetchone()
        if row is None:
            return None
        alert = row_to_alert(row)
        _transition_row(conn, alert, alert.status, "system", note)
        return alert


def close_active(
    conn: Conn,
    elder_id: str,
    kind: AlertKind,
    target: AlertStatus,
    actor: str,
    note: str,
    now_ms: int,
    device_id: str | None = None,
) -> AlertRow | None:
    """Close the active alert of (elder, kind), if any (and raised by `device_id` when given).

    A cancel (`target` cancelled, from the wearer's device) closes the alert only while it is
    in `WEARER_CANCELLABLE`; on an alert a person has taken it is kept as a note in the
    history (status unchanged) and None is returned.
    """
    row = conn.execute(
        "SELECT alert_id, status FROM alerts WHERE elder_id = %s AND kind = %s"
        " AND status = ANY(%s) AND (%s::text IS NULL OR device_id = %s::text)",
        (elder_id, kind.value, _ACTIVE, device_id, device_id),
    ).fetchone()
    conn.commit()
    if row is None:
        return None
    cancel = target is AlertStatus.CANCELLED
    try:
        only = WEARER_CANCELLABLE if cancel else None
        return transition(conn, row[0], target, actor, note, now_ms, only_from=only)
    except TransitionError:
        # Taken by a person meanwhile (or closed): the cancel is only information now.
        if cancel:
            _note(conn, row[0], actor, f"{note}; the alert was already taken: kept active", now_ms)
        return None


def _note(conn: Conn, alert_id: str, actor: str, note: str, now_ms: int) -> None:
    """Record a note in an active alert's history (a transition row, status unchanged)."""
    _check_actor(actor)
    with conn.transaction():
        conn.execute(
            "INSERT INTO alert_transitions (alert_id, at_ts, from_status, to_status, center_id,"
            " actor, note) SELECT alert_id, %s, status, status, center_id, %s, %s FROM alerts"
            " WHERE alert_id = %s AND status = ANY(%s)",
            (now_ms, actor, note, alert_id, _ACTIVE),
        )
    logger.info("alert %s: note from %s kept in its history", alert_id, actor)


def get_alert(conn: Conn, alert_id: str) -> AlertRow | None:
    """One alert by id."""
    row = conn.execute(f"SELECT {COLUMNS} FROM alerts WHERE alert_id = %s", (alert_id,)).fetchone()
    conn.commit()
    return row_to_alert(row) if row else None


def active_alerts(conn: Conn) -> list[AlertRow]:
    """Every open, acknowledged or escalated alert."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM alerts WHERE status = ANY(%s) ORDER BY raised_ts", (_ACTIVE,)
    ).fetchall()
    conn.commit()
    return [row_to_alert(r) for r in rows]


def list_alerts(
    conn: Conn, statuses: Sequence[AlertStatus] | None = None, limit: int = 50
) -> list[AlertRow]:
    """The newest alerts, optionally of some statuses only."""
    wanted = [s.value for s in statuses] if statuses else [s.value for s in AlertStatus]
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM alerts WHERE status = ANY(%s) ORDER BY raised_ts DESC LIMIT %s",
        (wanted, limit),
    ).fetchall()
    conn.commit()
    return [row_to_alert(r) for r in rows]


def history(conn: Conn, alert_id: str) -> list[tuple[int, str | None, str, str, str, str]]:
    """Transitions of one alert: (at_ts, from, to, center_id, actor, note), oldest first."""
    rows = conn.execute(
        "SELECT at_ts, from_status, to_status, center_id, actor, note FROM alert_transitions"
        " WHERE alert_id = %s ORDER BY at_ts, id",
        (alert_id,),
    ).fetchall()
    conn.commit()
    return [(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]


def fall_alert_near(conn: Conn, device_id: str, lo_ms: int, hi_ms: int) -> str | None:
    """A fall alert (any status) of this device triggered in [`lo_ms`, `hi_ms`], device ms:
    its first or its latest trigger. Returns its id, or None. Committed."""
    row = conn.execute(
        "SELECT alert_id FROM alerts WHERE device_id = %s AND kind = %s AND ("
        " event_ts BETWEEN %s AND %s OR last_event_ts BETWEEN %s AND %s) LIMIT 1",
        (device_id, AlertKind.FALL.value, lo_ms, hi_ms, lo_ms, hi_ms),
    ).fetchone()
    conn.commit()
    return str(row[0]) if row else None


def save_progress(conn: Conn, partition: str, through_ms: int) -> None:
    """Record that `partition` ('whole' or 'k/N') handled live traffic received up to
    `through_ms` (platform ms). Committed."""
    conn.execute(
        "INSERT INTO alerting_progress (partition, through_ms) VALUES (%s, %s)"
        " ON CONFLICT (partition) DO UPDATE SET through_ms = greatest("
        "alerting_progress.through_ms, excluded.through_ms), updated_at = now()",
        (partition, through_ms),
    )
    conn.commit()


def load_progress(conn: Conn, partition: str) -> int | None:
    """The platform ms up to which `partition` last handled live traffic; None if never."""
    row = conn.execute(
        "SELECT through_ms FROM alerting_progress WHERE partition = %s", (partition,)
    ).fetchone()
    conn.commit()
    return None if row is None else int(row[0])
