"""Event ids of alert_transitions become visible in commit order (migration 030)."""

from __future__ import annotations

import threading
import time

import psycopg

from ingest.migrate import available_migrations
from tests.dashboard.conftest import DashFleet, RaiseAlert

_INSERT = (
    "INSERT INTO alert_transitions (alert_id, at_ts, from_status, to_status, center_id, actor,"
    " note) VALUES (%s, 0, 'open', 'open', 'cc', 'system', %s) RETURNING id"
)


def test_a_later_transaction_cannot_commit_an_id_before_an_earlier_one(
    schema_url: str, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    alert = raise_alert(dash_fleet.elders[0])
    first = psycopg.connect(schema_url)
    try:
        first_id = first.execute(_INSERT, (alert.alert_id, "first")).fetchone()[0]  # type: ignore[index]
        second_id: list[int] = []

        def second() -> None:
            with psycopg.connect(schema_url) as conn:
                second_id.append(conn.execute(_INSERT, (alert.alert_id, "second")).fetchone()[0])  # type: ignore[index]

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(1.0)
        # The second transaction started after the first drew its id: a reader must not see
        # it (a reader resuming after it would skip the first for good).
        with psycopg.connect(schema_url) as reader:
            visible = [
                r[0]
                for r in reader.execute(
                    "SELECT id FROM alert_transitions WHERE note IN ('first', 'second')"
                )
            ]
        assert visible == []
        assert thread.is_alive()
        first.commit()
    finally:
        first.close()
    thread.join(10)
    assert second_id and second_id[0] > first_id


def test_each_transition_notifies_the_feed_channel_at_commit(
    schema_url: str, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    with psycopg.connect(schema_url, autocommit=True) as listener:
        listener.execute("LISTEN alert_feed")
        alert = raise_alert(dash_fleet.elders[0])
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    with psycopg.connect(schema_url) as conn:
        ids = [
            str(r[0])
            for r in conn.execute(
                "SELECT id FROM alert_transitions WHERE alert_id = %s", (alert.alert_id,)
            )
        ]
    assert got == ids


def test_migration_030_runs_twice_and_keeps_one_trigger(
    schema_url: str, dash_fleet: DashFleet, raise_alert: RaiseAlert
) -> None:
    sql = next(m.sql for m in available_migrations() if m.version == "030")
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute(sql.encode())
        conn.execute(sql.encode())
        triggers = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'alert_transitions'::regclass"
            " AND tgname = 'alert_transitions_commit_order'"
        ).fetchone()
    assert triggers == (1,)
    alert = raise_alert(dash_fleet.elders[0])
    with psycopg.connect(schema_url) as conn:
        ids = conn.execute(
            "SELECT id FROM alert_transitions WHERE alert_id = %s", (alert.alert_id,)
        ).fetchall()
    assert len(ids) == 1 and ids[0][0] > 0
