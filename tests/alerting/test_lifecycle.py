"""Lifecycle rules on the real database: a wearer's cancel after a person took the call, and
an audit trail that always says who."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from alerting import store
from alerting.lifecycle import WEARER_CANCELLABLE, AlertRow, TransitionError, check_transition
from alerting.model import Raise, Trigger
from eldercare.cli import main
from gateway import AlertKind, AlertStatus, Severity
from tests.alerting.helpers import HOME, prepare_db, small_fleet

T0 = 1_764_316_800_000
Conn = psycopg.Connection[Any]


@pytest.fixture
def conn(schema_url: str) -> Iterator[Conn]:
    prepare_db(schema_url, small_fleet("lc"))
    with psycopg.connect(schema_url) as c:
        yield c


def _sos(conn: Conn) -> AlertRow:
    trig = Trigger(AlertKind.SOS, Severity.CRITICAL, "btn-lc", T0, "press", event_seq=1)
    result = store.raise_alert(
        conn,
        Raise("el-lc", trig, *HOME),
        lambda lat, lon: ("cc-a-lc", 100.0, True, False),
        lambda c, lat, lon: (100.0, True),
        T0,
    )
    assert result is not None
    return result[0]


def _status(conn: Conn, alert_id: str) -> AlertStatus:
    alert = store.get_alert(conn, alert_id)
    assert alert is not None
    return alert.status


def _cancel(conn: Conn, now_ms: int) -> AlertRow | None:
    return store.close_active(
        conn,
        "el-lc",
        AlertKind.SOS,
        AlertStatus.CANCELLED,
        "btn-lc",
        "cancelled by the wearer 8 s after the press",
        now_ms,
        "btn-lc",
    )


def test_the_wearer_cancels_an_alert_nobody_has_taken(conn: Conn) -> None:
    alert = _sos(conn)
    closed = _cancel(conn, T0 + 8_000)
    assert closed is not None and closed.status is AlertStatus.CANCELLED
    assert _status(conn, alert.alert_id) is AlertStatus.CANCELLED


@pytest.mark.parametrize("taken", [AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED])
def test_a_cancel_after_a_person_took_the_call_is_a_note(conn: Conn, taken: AlertStatus) -> None:
    alert = _sos(conn)
    center = ("cc-b-lc", 200.0, True, False) if taken is AlertStatus.ESCALATED else None
    store.transition(conn, alert.alert_id, taken, "disp-1", "calling", T0 + 5_000, center=center)
    assert _cancel(conn, T0 + 20_000) is None
    kept = store.get_alert(conn, alert.alert_id)
    assert kept is not None and kept.status is taken and kept.closed_ts is None
    at_ts, before, after, _, actor, note = store.history(conn, alert.alert_id)[-1]
    assert (at_ts, before, after, actor) == (T0 + 20_000, taken.value, taken.value, "btn-lc")
    assert "cancelled by the wearer" in note


@pytest.mark.parametrize("actor", ["", "   ", "\t"])
def test_a_transition_needs_an_actor(conn: Conn, actor: str) -> None:
    alert = _sos(conn)
    with pytest.raises(ValueError, match="actor"):
        store.transition(conn, alert.alert_id, AlertStatus.ACKNOWLEDGED, actor, "", T0 + 1)
    assert _status(conn, alert.alert_id) is AlertStatus.OPEN


@pytest.mark.parametrize(("op", "by"), [("ack", ""), ("resolve", "   "), ("ack", " \t ")])
def test_the_cli_refuses_a_blank_name(
    conn: Conn,
    schema_url: str,
    mqtt_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    op: str,
    by: str,
) -> None:
    alert = _sos(conn)
    monkeypatch.setenv("DATABASE_URL", schema_url)
    monkeypatch.setenv("MQTT_URL", mqtt_url)
    assert main(["alerts", op, alert.alert_id, "--by", by]) == 2
    assert "--by" in capsys.readouterr().err
    assert _status(conn, alert.alert_id) is AlertStatus.OPEN
    assert [h[4] for h in store.history(conn, alert.alert_id)] == ["btn-lc"]


def test_a_cancel_racing_an_acknowledgement_never_closes_the_taken_alert(conn: Conn) -> None:
    alert = _sos(conn)
    # The dispatcher takes the call after the cancel looked the alert up as open.
    store.transition(conn, alert.alert_id, AlertStatus.ACKNOWLEDGED, "disp-1", "", T0)
    with pytest.raises(TransitionError):
        store.transition(
            conn,
            alert.alert_id,
            AlertStatus.CANCELLED,
            "btn-lc",
            "",
            T0 + 1,
            only_from=WEARER_CANCELLABLE,
        )
    assert _status(conn, alert.alert_id) is AlertStatus.ACKNOWLEDGED


@pytest.mark.parametrize(
    ("current", "ok"),
    [(AlertStatus.OPEN, True), (AlertStatus.ACKNOWLEDGED, False), (AlertStatus.ESCALATED, False)],
    ids=["open", "acknowledged", "escalated"],
)
def test_every_path_cancels_only_an_alert_nobody_took(current: AlertStatus, ok: bool) -> None:
    if ok:
        check_transition(current, AlertStatus.CANCELLED)
    else:
        with pytest.raises(TransitionError):
            check_transition(current, AlertStatus.CANCELLED)
