"""The outbox's claim: urgent first, a lease that hides a claimed delivery until it ends."""

from __future__ import annotations

from typing import Any

import psycopg

from alerting.notify import db
from alerting.notify.planner import Event, Planned
from alerting.notify.policy import Channel
from tests.dashboard.conftest import DashFleet


def test_urgent_first_and_leased(schema_url: str, dash_fleet: DashFleet, raise_alert: Any) -> None:
    alert = raise_alert(dash_fleet.elders[0])
    event = Event(1, None, "open", "", "system", None, 1, {"alert_id": alert.alert_id})
    plan = [
        Planned("k-late-urgent", "open", Channel.PUSH, 2, None, "cc", True, 2_000),
        Planned("k-early-normal", "open", Channel.PUSH, 1, None, "cc", False, 1_000),
        Planned("k-future", "open", Channel.VOICE, 3, None, "cc", True, 9_000),
    ]
    with psycopg.connect(schema_url, autocommit=True) as conn:
        db.store_planned(conn, event, plan, 0)
        db.store_planned(conn, event, plan, 0)  # the same keys again: collapsed
        n = conn.execute("SELECT count(*) FROM notify_deliveries").fetchone()
        assert n is not None and n[0] == 3
        first = db.claim(conn, 5_000, 1_000, 1)
        second = db.claim(conn, 5_000, 1_000, 5)
        assert [c.target_id for c in first] == [2]  # urgent, though due later
        assert [c.target_id for c in second] == [1]  # the future voice call is not due
        assert db.claim(conn, 5_500, 1_000, 5) == []  # both leased until 6,000
        again = db.claim(conn, 6_000, 1_000, 5)
        assert sorted(c.target_id for c in again) == [1, 2]
        assert all(c.attempts == 2 for c in again)
