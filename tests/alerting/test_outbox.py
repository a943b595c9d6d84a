"""The local outbox: durable across a reopen, reconciled into PostgreSQL exactly once, and
merged into an alert another process raised for the same elder and kind meanwhile."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import psycopg

from alerting import store
from alerting.lifecycle import AlertRow
from alerting.model import Raise, Trigger
from alerting.outbox import Outbox, Transition
from gateway import AlertKind, AlertStatus, Severity
from tests.alerting.helpers import prepare_db, small_fleet

NOW = 1_760_000_000_000


def _alert(
    suffix: str, alert_id: str = "al-outbox-1", severity: Severity = Severity.HIGH
) -> AlertRow:
    return AlertRow(
        alert_id=alert_id,
        kind=AlertKind.SOS,
        severity=severity,
        status=AlertStatus.OPEN,
        elder_id=f"el-{suffix}",
        device_id=f"btn-{suffix}",
        center_id=f"cc-a-{suffix}",
        distance_m=140.0,
        in_coverage=True,
        over_capacity=False,
        lat=39.93,
        lon=116.37,
        event_ts=NOW - 500,
        raised_ts=NOW,
        updated_ts=NOW,
        acked_ts=None,
        closed_ts=None,
        escalations=0,
        reason="press",
        routed_ts=NOW,
        tried_centers=(f"cc-a-{suffix}",),
        last_event_ts=NOW - 500,
    )


def _escalated(alert: AlertRow, suffix: str) -> AlertRow:
    return replace(
        alert,
        status=AlertStatus.ESCALATED,
        center_id=f"cc-b-{suffix}",
        updated_ts=NOW + 60_000,
        routed_ts=NOW + 60_000,
        tried_centers=(*alert.tried_centers, f"cc-b-{suffix}"),
        escalations=1,
    )


def test_records_survive_a_reopen_and_reconcile_exactly_once_after_a_crash(
    schema_url: str, device_suffix: str, tmp_path: Path
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    path = tmp_path / "outbox.sqlite3"
    opened = _alert(device_suffix)
    box = Outbox(str(path))
    box.record(opened, Transition(None, opened.device_id, "press"))
    box.record(_escalated(opened, device_suffix), Transition(AlertStatus.OPEN, "system", "esc"))
    # A SIGKILL leaves the file as it is: a new process reads it back.
    again = Outbox(str(path))
    assert [(a.alert_id, a.status) for a in again.pending()] == [
        (opened.alert_id, AlertStatus.ESCALATED)
    ]
    assert again.depth() == 1
    # A crash after PostgreSQL committed but before the outbox forgot: replay the same file.
    again.close()
    box.close()
    shutil.copy(path, tmp_path / "copy.sqlite3")
    with psycopg.connect(schema_url) as conn:
        Outbox(str(path)).reconcile(conn)
        replayed = Outbox(str(tmp_path / "copy.sqlite3"))
        assert replayed.depth() == 1
        replayed.reconcile(conn)
        assert replayed.depth() == 0 and Outbox(str(path)).depth() == 0
        alerts = store.list_alerts(conn)
        steps = [(h[1], h[2], h[4]) for h in store.history(conn, opened.alert_id)]
    assert [(a.alert_id, a.status, a.center_id, a.escalations) for a in alerts] == [
        (opened.alert_id, AlertStatus.ESCALATED, f"cc-b-{device_suffix}", 1)
    ]
    assert steps == [(None, "open", opened.device_id), ("open", "escalated", "system")]


def test_an_alert_raised_meanwhile_by_another_process_is_merged_not_doubled(
    schema_url: str, device_suffix: str, tmp_path: Path
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    ours = _alert(device_suffix, "al-outbox-ours", Severity.CRITICAL)
    box = Outbox(str(tmp_path / "outbox.sqlite3"))
    box.record(ours, Transition(None, ours.device_id, "press"))
    trigger = Trigger(AlertKind.SOS, Severity.HIGH, f"btn-{device_suffix}", NOW - 9_000, "other")
    action = Raise(f"el-{device_suffix}", trigger, 39.93, 116.37)
    with psycopg.connect(schema_url) as conn:
        result = store.raise_alert(
            conn,
            action,
            lambda lat, lon: (f"cc-a-{device_suffix}", 140.0, True, False),
            lambda c, lat, lon: (140.0, True),
            NOW - 1_000,
        )
        assert result is not None
        theirs = result[0]
        stored = box.reconcile(conn)
        alerts = {a.alert_id: a for a in store.list_alerts(conn)}
        merged_history = store.history(conn, ours.alert_id)
    assert [a.alert_id for a in stored] == [theirs.alert_id]
    assert set(alerts) == {theirs.alert_id, ours.alert_id}
    active = [a for a in alerts.values() if a.active]
    assert [a.alert_id for a in active] == [theirs.alert_id]
    # The survivor takes the higher severity and the newer trigger.
    assert active[0].severity is Severity.CRITICAL
    assert active[0].last_event_ts == ours.last_event_ts
    assert alerts[ours.alert_id].status is AlertStatus.CANCELLED
    assert alerts[ours.alert_id].reason == f"merged into {theirs.alert_id}"
    assert [h[2] for h in merged_history] == ["open", "cancelled"]


def test_a_close_stored_by_a_person_is_not_reopened_by_the_outbox(
    schema_url: str, device_suffix: str, tmp_path: Path
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    first = Outbox(str(tmp_path / "a.sqlite3"))
    opened = _alert(device_suffix)
    first.record(opened, Transition(None, opened.device_id, "press"))
    with psycopg.connect(schema_url) as conn:
        first.reconcile(conn)
        store.transition(conn, opened.alert_id, AlertStatus.RESOLVED, "nurse-1", "ok", NOW + 1)
        late = Outbox(str(tmp_path / "b.sqlite3"))
        late.record(_escalated(opened, device_suffix), Transition(AlertStatus.OPEN, "system", "e"))
        late.reconcile(conn)
        alert = store.get_alert(conn, opened.alert_id)
        steps = [h[2] for h in store.history(conn, opened.alert_id)]
    assert alert is not None and alert.status is AlertStatus.RESOLVED
    assert steps == ["open", "resolved", "escalated"]


def test_an_acknowledgement_stored_meanwhile_keeps_its_status_and_centre(
    schema_url: str, device_suffix: str, tmp_path: Path
) -> None:
    """A process cut off from the database escalates an alert a dispatcher has acknowledged."""
    prepare_db(schema_url, small_fleet(device_suffix))
    opened = _alert(device_suffix)
    first = Outbox(str(tmp_path / "a.sqlite3"))
    first.record(opened, Transition(None, opened.device_id, "press"))
    with psycopg.connect(schema_url) as conn:
        first.reconcile(conn)
        store.transition(conn, opened.alert_id, AlertStatus.ACKNOWLEDGED, "nurse-1", "", NOW + 1)
        late = Outbox(str(tmp_path / "b.sqlite3"))
        escalated = replace(
            _escalated(opened, device_suffix), severity=Severity.CRITICAL, lat=39.94
        )
        late.record(escalated, Transition(AlertStatus.OPEN, "system", "escalated: unanswered"))
        late.reconcile(conn)
        alert = store.get_alert(conn, opened.alert_id)
    assert alert is not None
    assert (alert.status, alert.center_id, alert.acked_ts) == (
        AlertStatus.ACKNOWLEDGED,
        opened.center_id,
        NOW + 1,
    )
    assert (alert.severity, alert.lat) == (Severity.CRITICAL, 39.94)
