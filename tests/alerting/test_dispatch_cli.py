"""`eldercare centre duty|list` against the real PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from alerting.dispatch_cli import DUTY_CHANNEL
from tests.alerting.test_kpi import T0, add_alert, add_center, db, run_cli

__all__ = ["db"]  # the fixture, shared with test_kpi


def on_duty(conn: psycopg.Connection[Any], center_id: str) -> bool:
    row = conn.execute("SELECT on_duty FROM care_centers WHERE id = %s", (center_id,)).fetchone()
    assert row is not None
    return bool(row[0])


def test_duty_off_and_on(
    db: psycopg.Connection[Any], schema_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    add_center(db, "cc-a")
    add_center(db, "cc-b")
    add_alert(db, "al-1", "cc-a", T0)
    add_alert(db, "al-2", "cc-a", T0, "acknowledged", acked_ts=T0 + 5000)
    add_alert(db, "al-3", "cc-a", T0, "resolved", closed_ts=T0 + 5000)
    with psycopg.connect(schema_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {DUTY_CHANNEL}")
        assert run_cli(["centre", "duty", "cc-a", "--off", "--database-url", schema_url]) == 0
        notes = list(listener.notifies(timeout=5, stop_after=1))
    assert [(n.channel, n.payload) for n in notes] == [(DUTY_CHANNEL, "cc-a")]
    assert "cc-a: off duty; 2 active alert(s) to re-route" in capsys.readouterr().out
    assert not on_duty(db, "cc-a") and on_duty(db, "cc-b")
    assert run_cli(["center", "duty", "cc-a", "--on", "--database-url", schema_url]) == 0
    assert on_duty(db, "cc-a")


def test_duty_of_unknown_centre_fails(
    db: psycopg.Connection[Any], schema_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    add_center(db, "cc-a")
    assert run_cli(["centre", "duty", "cc-zz", "--off", "--database-url", schema_url]) == 1
    assert "no care centre 'cc-zz'" in capsys.readouterr().err
    assert on_duty(db, "cc-a")


def test_duty_needs_on_or_off() -> None:
    with pytest.raises(SystemExit):
        run_cli(["centre", "duty", "cc-a"])
    with pytest.raises(SystemExit):
        run_cli(["centre", "duty", "cc-a", "--on", "--off"])


def test_centre_list(
    db: psycopg.Connection[Any],
    schema_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_center(db, "cc-a", capacity=2)
    add_center(db, "cc-b")
    add_alert(db, "al-1", "cc-a", T0)
    add_alert(db, "al-2", "cc-a", T0, "escalated")
    add_alert(db, "al-3", "cc-b", T0, "cancelled", closed_ts=T0 + 1)
    db.execute("UPDATE care_centers SET on_duty = false WHERE id = 'cc-b'")
    # The database comes from the settings ($DATABASE_URL) when not given on the command line.
    monkeypatch.setenv("DATABASE_URL", schema_url)
    assert run_cli(["centre", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["on_duty"], r["active"], r["capacity"]) for r in rows] == [
        ("cc-a", True, 2, 2),
        ("cc-b", False, 0, 3),
    ]
    assert run_cli(["centre", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:4] == ["cc-a", "on", "2", "2"]
    assert lines[2].split()[:4] == ["cc-b", "OFF", "0", "3"]
