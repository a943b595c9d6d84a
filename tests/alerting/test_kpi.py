"""Answer-time KPIs and centre load against the real PostgreSQL, in a fresh schema."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from alerting import dispatch_cli
from alerting.kpi import (
    AnswerTimeKpi,
    AnswerTimeReport,
    answer_time_kpis,
    answer_time_kpis_async,
    center_loads,
)
from ingest.migrate import apply_migrations

T0 = 1_764_340_000_000
S = 1000  # ms per second


@pytest.fixture
def db(schema_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A migrated schema of this test alone."""
    with psycopg.connect(schema_url, autocommit=True) as conn:
        apply_migrations(conn)
        yield conn


def add_center(conn: psycopg.Connection[Any], center_id: str, capacity: int = 3) -> None:
    conn.execute(
        "INSERT INTO care_centers (id, name, lat, lon, capacity) VALUES (%s, %s, 39.9, 116.35, %s)",
        (center_id, f"Centre {center_id}", capacity),
    )


def add_alert(
    conn: psycopg.Connection[Any],
    alert_id: str,
    center_id: str,
    raised_ts: int,
    status: str = "open",
    acked_ts: int | None = None,
    closed_ts: int | None = None,
    over_capacity: bool = False,
) -> None:
    conn.execute(
        "INSERT INTO alerts (alert_id, kind, severity, status, elder_id, device_id, center_id,"
        " distance_m, in_coverage, over_capacity, lat, lon, event_ts, raised_ts, updated_ts,"
        " acked_ts, closed_ts) VALUES (%s, 'sos', 'critical', %s, %s, 'btn-1', %s, 100, true,"
        " %s, 39.9, 116.35, %s, %s, %s, %s, %s)",
        (
            alert_id,
            status,
            f"el-{alert_id}",  # one active alert per elder and kind
            center_id,
            over_capacity,
            raised_ts,
            raised_ts,
            raised_ts,
            acked_ts,
            closed_ts,
        ),
    )


def add_transition(
    conn: psycopg.Connection[Any], alert_id: str, at_ts: int, to_status: str, center_id: str
) -> None:
    conn.execute(
        "INSERT INTO alert_transitions (alert_id, at_ts, to_status, center_id, actor)"
        " VALUES (%s, %s, %s, %s, 'system')",
        (alert_id, at_ts, to_status, center_id),
    )


def seed_answer_times(conn: psycopg.Connection[Any]) -> int:
    """Alerts with known answer times; returns the `now` of the scenario."""
    now = T0 + 3600 * S
    add_alert(conn, "a-30s", "cc-a", T0, "resolved", acked_ts=T0 + 30 * S, closed_ts=T0 + 99 * S)
    add_alert(conn, "a-90s", "cc-a", T0, "acknowledged", acked_ts=T0 + 90 * S)
    add_alert(conn, "a-200s", "cc-a", T0, "acknowledged", acked_ts=T0 + 200 * S)
    # Withdrawn by the wearer after 20 s, before anyone had to answer: not judged.
    add_alert(conn, "a-cancel", "cc-a", T0, "cancelled", closed_ts=T0 + 20 * S)
    # Resolved without an explicit acknowledgement: the resolve is the answer.
    add_alert(conn, "b-45s", "cc-b", T0, "resolved", closed_ts=T0 + 45 * S)
    # Unanswered for 1000 s: missed at both thresholds.
    add_alert(conn, "b-open", "cc-b", now - 1000 * S)
    # Raised 10 s ago: too early to judge.
    add_alert(conn, "b-new", "cc-b", now - 10 * S, "escalated")
    # Before the period.
    add_alert(conn, "old", "cc-b", T0 - 10 * S, "acknowledged", acked_ts=T0 + 500 * S)
    return now


def test_answer_time_kpis_per_centre_and_overall(db: psycopg.Connection[Any]) -> None:
    now = seed_answer_times(db)
    report = answer_time_kpis(db, T0, now)
    by_id = {k.center_id: k for k in report.centers}
    assert by_id["cc-a"] == AnswerTimeKpi("cc-a", 4, 3, 3, 1, 3, 2)
    assert by_id["cc-b"] == AnswerTimeKpi("cc-b", 3, 1, 2, 1, 2, 1)
    assert report.overall == AnswerTimeKpi(None, 7, 4, 5, 2, 5, 3)
    assert report.overall.share_60s == pytest.approx(0.4)
    assert report.overall.meets_targets is False


def test_async_variant_gives_the_same_report(db: psycopg.Connection[Any], schema_url: str) -> None:
    now = seed_answer_times(db)

    async def read() -> AnswerTimeReport:
        async with await psycopg.AsyncConnection.connect(schema_url) as aconn:
            return await answer_time_kpis_async(aconn, T0, now)

    assert asyncio.run(read()) == answer_time_kpis(db, T0, now)


def test_targets_met_and_empty_period(db: psycopg.Connection[Any]) -> None:
    empty = answer_time_kpis(db, T0)
    assert empty.overall.alerts == 0 and empty.overall.share_60s is None
    assert empty.overall.meets_targets is None and empty.centers == ()
    for i in range(40):
        add_alert(db, f"ok-{i}", "cc-a", T0 + i * S, "acknowledged", acked_ts=T0 + (i + 59) * S)
    report = answer_time_kpis(db, T0, T0 + 3600 * S)
    assert report.overall.share_60s == 1.0 and report.overall.meets_targets is True
    # One alert of 40 answered late: 97.5 % exactly still meets the 60 s target; 99 % does not.
    add_alert(db, "late", "cc-a", T0, "acknowledged", acked_ts=T0 + 61 * S)
    report = answer_time_kpis(db, T0, T0 + 3600 * S)
    assert (report.overall.within_60s, report.overall.judged_60s) == (40, 41)
    assert report.overall.meets_targets is True
    add_alert(db, "later", "cc-a", T0, "acknowledged", acked_ts=T0 + 181 * S)
    assert answer_time_kpis(db, T0, T0 + 3600 * S).overall.meets_targets is False


def test_center_loads_from_transition_history(db: psycopg.Connection[Any]) -> None:
    add_center(db, "cc-a", capacity=1)
    add_center(db, "cc-b", capacity=1)
    add_center(db, "cc-idle")
    add_alert(db, "al-1", "cc-a", T0, "resolved", closed_ts=T0 + 100 * S)
    add_transition(db, "al-1", T0, "open", "cc-a")
    add_transition(db, "al-1", T0 + 100 * S, "resolved", "cc-a")
    # Raised at cc-b, escalated to cc-a, acknowledged there and still active.
    add_alert(db, "al-2", "cc-a", T0 + 50 * S, "acknowledged", acked_ts=T0 + 120 * S)
    add_transition(db, "al-2", T0 + 50 * S, "open", "cc-b")
    add_transition(db, "al-2", T0 + 110 * S, "escalated", "cc-a")
    add_transition(db, "al-2", T0 + 120 * S, "acknowledged", "cc-a")
    # No history: spans raise..close at its centre; routed while nobody had room.
    add_alert(db, "al-3", "cc-a", T0 + 105 * S, "resolved", closed_ts=T0 + 130 * S)
    db.execute("UPDATE alerts SET over_capacity = true WHERE alert_id = 'al-3'")
    # Starts at cc-b exactly when al-2 leaves it: back to back, not overlapping.
    add_alert(db, "al-4", "cc-b", T0 + 110 * S, "resolved", closed_ts=T0 + 200 * S)
    loads = {ld.center_id: ld for ld in center_loads(db, T0 - 3600 * S, T0 + 3600 * S)}
    assert (loads["cc-a"].peak_active, loads["cc-a"].over_capacity_alerts) == (2, 1)
    assert loads["cc-a"].over_capacity
    assert loads["cc-b"].peak_active == 1 and not loads["cc-b"].over_capacity
    assert loads["cc-idle"].peak_active == 0 and not loads["cc-idle"].over_capacity
    # A period after everything closed sees only al-2, still active at cc-a.
    later = {ld.center_id: ld for ld in center_loads(db, T0 + 300 * S, T0 + 3600 * S)}
    assert later["cc-a"].peak_active == 1 and later["cc-a"].over_capacity_alerts == 0


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    dispatch_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def test_kpi_command_json(
    db: psycopg.Connection[Any], schema_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now_ms = int(db.execute("SELECT extract(epoch FROM now()) * 1000").fetchone()[0])  # type: ignore[index]
    add_alert(db, "fast", "cc-a", now_ms - 600 * S, "acknowledged", acked_ts=now_ms - 590 * S)
    add_alert(db, "slow", "cc-b", now_ms - 600 * S, "acknowledged", acked_ts=now_ms - 500 * S)
    add_alert(db, "ancient", "cc-b", now_ms - 48 * 3600 * S, "acknowledged", acked_ts=now_ms)
    assert run_cli(["kpi", "--since-hours", "1", "--json", "--database-url", schema_url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overall"]["alerts"] == 2
    assert out["overall"]["share_60s"] == 0.5 and out["overall"]["share_180s"] == 1.0
    assert [c["center_id"] for c in out["centers"]] == ["cc-a", "cc-b"]
    assert run_cli(["kpi", "--database-url", schema_url]) == 0
    text = capsys.readouterr().out
    assert "all centres" in text and "BELOW" in text and "cc-b" in text
