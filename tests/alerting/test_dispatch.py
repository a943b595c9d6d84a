"""Escalation, reminders and off-duty re-routing with an injected clock."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.dispatch import DEFAULT_DEADLINES_S, ActiveAlert, Dispatcher, Move, MoveKind
from gateway import AlertStatus, CareCenter, Severity
from gateway.geo import distance_m

T0 = 1_764_340_000_000


def line_of_centers(n: int, capacity: int = 3) -> list[CareCenter]:
    """Centres due east of the alert at 39.9 N 116.30 E, 1 km apart: nearest first."""
    return [
        CareCenter(f"cc-{i}", f"Centre {i}", 39.9, 116.30 + 0.0117 * (i + 1), capacity)
        for i in range(n)
    ]


def alert(
    center_id: str = "cc-0",
    severity: Severity = Severity.CRITICAL,
    status: AlertStatus = AlertStatus.OPEN,
    routed_ts: int = T0,
    alert_id: str = "al-1",
) -> ActiveAlert:
    return ActiveAlert(alert_id, severity, status, center_id, 39.9, 116.30, routed_ts, (center_id,))


def apply(a: ActiveAlert, move: Move, now_ms: int) -> ActiveAlert:
    """What the alerting service does with a move."""
    new = move.decision.center_id
    status = AlertStatus.ESCALATED if move.kind == MoveKind.ESCALATE else a.status
    tried = a.tried_centers if new in a.tried_centers else (*a.tried_centers, new)
    return dataclasses.replace(
        a, center_id=new, status=status, routed_ts=now_ms, tried_centers=tried
    )


@pytest.mark.parametrize(
    ("severity", "deadline_s"),
    [(s, DEFAULT_DEADLINES_S[s]) for s in Severity],
    ids=[s.value for s in Severity],
)
def test_default_deadlines(severity: Severity, deadline_s: float) -> None:
    dispatcher = Dispatcher(line_of_centers(2))
    a = alert(severity=severity)
    assert dispatcher.due_moves([a], {"cc-0": 1}, T0 + int(deadline_s * 1000) - 1) == []
    (move,) = dispatcher.due_moves([a], {"cc-0": 1}, T0 + int(deadline_s * 1000))
    assert (move.kind, move.decision.center_id) == ("escalate", "cc-1")
    assert move.decision.distance_m == pytest.approx(distance_m(39.9, 116.30, 39.9, 116.3234))


def test_critical_deadline_is_the_telecare_60_s() -> None:
    assert DEFAULT_DEADLINES_S[Severity.CRITICAL] == 60.0
    assert list(DEFAULT_DEADLINES_S.values()) == sorted(DEFAULT_DEADLINES_S.values())


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    severity=st.sampled_from(list(Severity)),
    deadline_s=st.integers(1, 600),
    reminder_s=st.one_of(st.none(), st.integers(1, 300)),
    step_s=st.integers(1, 17),
)
def test_escalates_through_every_centre_then_reminds(
    n: int, severity: Severity, deadline_s: int, reminder_s: int | None, step_s: int
) -> None:
    centers = line_of_centers(n)
    dispatcher = Dispatcher(centers, {severity: float(deadline_s)}, reminder_s)
    a = alert(severity=severity)
    interval_s = reminder_s if reminder_s is not None else deadline_s
    expected_escalation = [c.id for c in centers[1:]]
    seen: list[tuple[str, str, int]] = []
    now = T0
    end = T0 + ((n - 1) * (deadline_s + step_s) + 3 * (interval_s + step_s)) * 1000
    while now <= end:
        for move in dispatcher.due_moves([a], {a.center_id: 1}, now):
            seen.append((move.kind, move.decision.center_id, now - a.routed_ts))
            a = apply(a, move, now)
        now += step_s * 1000
    escalations = [(c, dt) for kind, c, dt in seen if kind == "escalate"]
    reminders = [(c, dt) for kind, c, dt in seen if kind == "reminder"]
    assert [c for c, _ in escalations] == expected_escalation  # nearest untried first
    for _, dt in escalations:  # each at the first tick at or after the deadline
        assert deadline_s * 1000 <= dt < (deadline_s + step_s) * 1000
    assert len(reminders) >= 2
    for c, dt in reminders:
        assert c == centers[-1].id
        assert interval_s * 1000 <= dt < (interval_s + step_s) * 1000
    assert [k for k, _, _ in seen] == ["escalate"] * (n - 1) + ["reminder"] * len(reminders)


def test_acknowledged_alerts_do_not_escalate() -> None:
    dispatcher = Dispatcher(line_of_centers(3))
    acked = alert(status=AlertStatus.ACKNOWLEDGED)
    closed = alert(status=AlertStatus.RESOLVED, alert_id="al-2")
    assert dispatcher.due_moves([acked, closed], {"cc-0": 1}, T0 + 3_600_000) == []


def test_off_duty_centre_hands_over_all_its_active_alerts() -> None:
    dispatcher = Dispatcher(line_of_centers(3))
    alerts = [
        alert(alert_id="al-open"),
        alert(alert_id="al-acked", status=AlertStatus.ACKNOWLEDGED),
        alert(alert_id="al-other", center_id="cc-2"),
    ]
    counts = {"cc-0": 2, "cc-2": 1}
    assert dispatcher.due_moves(alerts, counts, T0 + 1000) == []
    dispatcher.set_on_duty("cc-0", False)
    moves = dispatcher.due_moves(alerts, counts, T0 + 1000)
    assert {(m.alert_id, m.kind, m.decision.center_id) for m in moves} == {
        ("al-open", "reroute_off_duty", "cc-1"),
        ("al-acked", "reroute_off_duty", "cc-1"),
    }


def test_off_duty_reroute_goes_back_to_a_tried_centre_when_none_is_left() -> None:
    dispatcher = Dispatcher(line_of_centers(2))
    a = dataclasses.replace(alert(center_id="cc-1"), tried_centers=("cc-0", "cc-1"))
    dispatcher.set_on_duty("cc-1", False)
    (move,) = dispatcher.due_moves([a], {"cc-1": 1}, T0)
    assert (move.kind, move.decision.center_id) == ("reroute_off_duty", "cc-0")


def test_nobody_on_duty_leaves_alert_in_place(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = Dispatcher(line_of_centers(2))
    dispatcher.set_on_duty("cc-0", False)
    dispatcher.set_on_duty("cc-1", False)
    with caplog.at_level(logging.WARNING, logger="alerting.dispatch"):
        assert dispatcher.due_moves([alert()], {"cc-0": 1}, T0 + 3_600_000) == []
    assert "no centre is on duty" in caplog.text


def test_scarce_capacity_goes_to_the_most_urgent_alert() -> None:
    # cc-1 (nearest after cc-0) has one free slot; cc-2 has room too but is farther away.
    centers = [*line_of_centers(2, capacity=1), *line_of_centers(3, capacity=5)[2:]]
    dispatcher = Dispatcher(centers)
    low = alert(alert_id="al-low", severity=Severity.LOW, routed_ts=T0 - 10_000_000)
    crit = alert(alert_id="al-crit", severity=Severity.CRITICAL)
    moves = dispatcher.due_moves([low, crit], {"cc-0": 2}, T0 + 3_600_000)
    assert [(m.alert_id, m.decision.center_id) for m in moves] == [
        ("al-crit", "cc-1"),
        ("al-low", "cc-2"),
    ]
    assert all(not m.decision.over_capacity for m in moves)


def test_reminder_reports_the_centre_load() -> None:
    dispatcher = Dispatcher(line_of_centers(1, capacity=1), reminder_s=30)
    (move,) = dispatcher.due_moves([alert()], {"cc-0": 2}, T0 + 30_000)
    assert move.kind == "reminder"
    assert move.decision.over_capacity and move.decision.in_coverage is False
    assert dispatcher.due_moves([alert()], {"cc-0": 2}, T0 + 29_999) == []


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="deadlines"):
        Dispatcher([], {Severity.LOW: 0})
    with pytest.raises(ValueError, match="reminder"):
        Dispatcher([], reminder_s=-1)


@st.composite
def situations(draw: st.DrawFn) -> tuple[Dispatcher, list[ActiveAlert], dict[str, int], int]:
    """Random centres, duty, deadlines and active alerts, and a random `now`."""
    centers = line_of_centers(draw(st.integers(1, 6)), capacity=draw(st.integers(0, 3)))
    ids = [c.id for c in centers]
    deadlines = {s: float(draw(st.integers(1, 900))) for s in Severity}
    dispatcher = Dispatcher(centers, deadlines, draw(st.one_of(st.none(), st.integers(1, 300))))
    for cid in draw(st.sets(st.sampled_from(ids))):
        dispatcher.set_on_duty(cid, False)
    alerts = []
    for i in range(draw(st.integers(0, 8))):
        tried = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True))
        alerts.append(
            ActiveAlert(
                f"al-{i}",
                draw(st.sampled_from(list(Severity))),
                draw(st.sampled_from(list(AlertStatus))),
                tried[-1],
                39.9 + draw(st.floats(-0.05, 0.05)),
                116.3 + draw(st.floats(-0.05, 0.1)),
                T0 - draw(st.integers(0, 1_000_000)),
                tuple(tried),
            )
        )
    counts = {cid: draw(st.integers(0, 4)) for cid in ids}
    return dispatcher, alerts, counts, T0


@settings(max_examples=200, deadline=None)
@given(situation=situations())
def test_every_move_follows_the_policy(
    situation: tuple[Dispatcher, list[ActiveAlert], dict[str, int], int],
) -> None:
    dispatcher, alerts, counts, now = situation
    moves = dispatcher.due_moves(alerts, counts, now)
    by_id = {a.alert_id: a for a in alerts}
    assert len({m.alert_id for m in moves}) == len(moves)  # at most one move per alert
    for m in moves:
        a = by_id[m.alert_id]
        elapsed_s = (now - a.routed_ts) / 1000
        untried = [
            c.id
            for c in dispatcher.index.centers
            if dispatcher.on_duty(c.id) and c.id not in a.tried_centers
        ]
        assert a.status in (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED)
        assert dispatcher.on_duty(m.decision.center_id)
        if m.kind == "reroute_off_duty":
            assert not dispatcher.on_duty(a.center_id)
            assert m.decision.center_id in untried or not untried
        elif m.kind == "escalate":
            assert a.status is not AlertStatus.ACKNOWLEDGED and dispatcher.on_duty(a.center_id)
            assert elapsed_s >= dispatcher.deadline_s(a.severity)
            assert m.decision.center_id in untried
        else:
            assert m.kind == "reminder" and m.decision.center_id == a.center_id
            assert not untried and elapsed_s >= dispatcher.reminder_interval_s(a.severity)
    moved = {m.alert_id for m in moves}
    for a in alerts:  # and nothing that is due is left out
        if a.alert_id in moved or a.status not in (AlertStatus.OPEN, AlertStatus.ESCALATED):
            continue
        if not dispatcher.on_duty(a.center_id):
            assert not any(dispatcher.on_duty(c.id) for c in dispatcher.index.centers)
            continue
        elapsed_s = (now - a.routed_ts) / 1000
        has_untried = any(
            dispatcher.on_duty(c.id) and c.id not in a.tried_centers
            for c in dispatcher.index.centers
        )
        if has_untried:
            assert elapsed_s < dispatcher.deadline_s(a.severity)
        else:
            assert elapsed_s < dispatcher.reminder_interval_s(a.severity)
