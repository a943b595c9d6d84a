"""Honest scoring: one alert per incident, early alerts are false alarms, every kind scored."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from alerting.lifecycle import AlertRow
from evaluation.dispatcher import Staff, StaffModel
from evaluation.eval_report import fires_paged, staff_report
from evaluation.scoring import MATCH_WINDOW_S, Truth, condition_end_ms, pool, score
from gateway import AlertKind, AlertStatus, DeviceType, Severity

T0 = 1_764_316_800_000
COUNTS = {DeviceType.CANE: 3, DeviceType.BAND: 1, DeviceType.BUTTON: 1, DeviceType.SMOKE: 2}


def _alert(
    alert_id: str,
    kind: AlertKind,
    elder: str,
    raised: int,
    status: AlertStatus = AlertStatus.OPEN,
    **changes: object,
) -> AlertRow:
    row = AlertRow(
        alert_id, kind, Severity.CRITICAL, status, elder, "dev", "cc", 1.0, True, False, 0.0,
        0.0, raised, raised, raised, None, None, 0, "", raised, ("cc",), raised,
    )  # fmt: skip
    return replace(row, **changes)  # type: ignore[arg-type]


def test_matching_is_one_to_one_and_every_kind_is_scored() -> None:
    truths = [
        Truth("fall", True, "el-1", "cane-1", T0, T0),
        Truth("fall", True, "el-2", "cane-2", T0, T0),
        Truth("sit_hard", False, "el-3", "cane-3", T0, T0),
        Truth("wandering", True, "el-4", "band-4", T0, T0, observable=False),
    ]
    alerts = [
        _alert("a1", AlertKind.FALL, "el-1", T0 + 10_000),
        _alert("a2", AlertKind.FALL, "el-3", T0 + 9_000),
        _alert("a3", AlertKind.SOS, "el-1", T0, AlertStatus.CANCELLED),
        _alert("a4", AlertKind.WANDERING, "el-4", T0 + 60_000),
        _alert("a5", AlertKind.INACTIVITY, "el-2", T0 + 5_000),
    ]
    s = score(truths, alerts, COUNTS, days=0.5)
    assert set(s) == set(MATCH_WINDOW_S) == {k.value for k in AlertKind}
    assert (s["fall"].incidents, s["fall"].detected, s["fall"].false_alarms) == (2, 1, 1)
    assert s["fall"].delays_s == [10.0]
    assert s["fall"].false_per_device_day == pytest.approx(1 / 1.5)
    assert s["sos"].cancelled == 1 and s["sos"].false_alarms == 0
    assert s["wandering"].incidents == 0 and s["wandering"].false_alarms == 0
    assert s["inactivity"].false_alarms == 1 and s["anomaly"].false_alarms == 0


def test_an_alert_raised_before_the_incident_is_a_false_alarm_not_a_detection() -> None:
    truths = [Truth("fall", True, "el-1", "cane-1", T0, T0)]
    early = _alert("a1", AlertKind.FALL, "el-1", T0 - 30_000, last_event_ts=T0 + 5_000)
    s = score(truths, [early], COUNTS, days=1.0)["fall"]
    assert (s.incidents, s.detected, s.false_alarms, s.delays_s) == (1, 0, 1, [])


def test_alerts_while_a_condition_lasts_are_repeats_and_after_it_false_alarms() -> None:
    hour = 3_600_000
    end = condition_end_ms(T0, "rhythm=af_rvr rate_bpm=131 hours=3.00")
    assert end == T0 + 3 * hour
    assert condition_end_ms(T0, "pattern=lapping") is None
    assert condition_end_ms(T0, "hours=soon") is None
    truths = [Truth("anomaly", True, "el-1", "band-1", T0, T0, end_ts=end)]
    alerts = [
        _alert("a1", AlertKind.ANOMALY, "el-1", T0 + 60_000, AlertStatus.RESOLVED),
        # Past the one-hour match window, the arrhythmia still on: a repeat.
        _alert("a2", AlertKind.ANOMALY, "el-1", T0 + 2 * hour, AlertStatus.RESOLVED),
        _alert("a3", AlertKind.ANOMALY, "el-1", T0 + 3 * hour + 60_000),
    ]
    s = score(truths, alerts, COUNTS, days=1.0)["anomaly"]
    assert (s.detected, s.repeats, s.false_alarms) == (1, 1, 1)
    # Without a known end the window alone counts.
    s = score([replace(truths[0], end_ts=None)], alerts, COUNTS, days=1.0)["anomaly"]
    assert (s.detected, s.repeats, s.false_alarms) == (1, 0, 2)


def test_one_alert_never_detects_two_incidents() -> None:
    truths = [
        Truth("sos", True, "el-1", "btn-1", T0, T0),
        Truth("sos", True, "el-1", "btn-1", T0 + 20_000, T0 + 20_000),
    ]
    alerts = [_alert("a1", AlertKind.SOS, "el-1", T0 + 1_000)]
    s = score(truths, alerts, COUNTS, days=1.0)["sos"]
    assert (s.incidents, s.detected, s.false_alarms) == (2, 1, 0)


def test_smoke_nuisance_closed_by_the_detector_is_counted_apart() -> None:
    closed = _alert(
        "a1", AlertKind.SMOKE, "el-1", T0, AlertStatus.RESOLVED, reason="unverified: x",
        closed_ts=T0 + 60_000,
    )  # fmt: skip
    handled = _alert(
        "a2", AlertKind.SMOKE, "el-2", T0, AlertStatus.RESOLVED, reason="unverified: x",
        acked_ts=T0 + 20_000, closed_ts=T0 + 200_000,
    )  # fmt: skip
    s = score([], [closed, handled], COUNTS, days=1.0)["smoke"]
    assert (s.auto_closed, s.false_alarms) == (1, 1)


def test_pooled_runs_narrow_the_wilson_interval() -> None:
    truths = [Truth("sos", True, f"el-{i}", "b", T0, T0) for i in range(10)]
    alerts = [_alert(f"a{i}", AlertKind.SOS, f"el-{i}", T0 + 1000) for i in range(9)]
    one = score(truths, alerts, COUNTS, days=1.0)
    pooled = pool([one, score(truths, alerts, COUNTS, days=1.0)])
    assert pooled["sos"].incidents == 20 and pooled["sos"].detected == 18
    lo1, hi1 = one["sos"].sensitivity_ci
    lo2, hi2 = pooled["sos"].sensitivity_ci
    assert lo1 < lo2 < 0.9 < hi2 < hi1
    assert pooled["sos"].device_days == pytest.approx(2 * 3 * 1.0 + 2 * 1 + 2 * 1)


def test_answer_time_counts_only_alerts_a_person_answered() -> None:
    alerts = [
        _alert("a1", AlertKind.SOS, "el-1", T0, AlertStatus.RESOLVED, acked_ts=T0 + 30_000),
        _alert("a2", AlertKind.SOS, "el-2", T0, AlertStatus.CANCELLED, closed_ts=T0 + 5_000),
        _alert("a3", AlertKind.SMOKE, "el-3", T0, AlertStatus.RESOLVED, closed_ts=T0 + 9_000),
    ]
    report = staff_report(alerts)
    assert "3 alerts, 1 answered by a person" in report
    assert "answered within 60 s: 1/1 = 1.000" in report


def test_fire_paged_within_a_second_of_the_crossing() -> None:
    fire = Truth("smoke", True, "el-1", "smk-1", T0, T0 + 90_000)
    at_crossing = _alert("a1", AlertKind.SMOKE, "el-1", T0 + 90_010, event_ts=T0 + 90_000)
    assert fires_paged([at_crossing], [fire], speed=20.0) == (1, 1)
    later = _alert("a1", AlertKind.SMOKE, "el-1", T0 + 120_000, event_ts=T0 + 115_000)
    assert fires_paged([later], [fire], speed=20.0) == (0, 1)


def test_simulated_staff_answer_like_a_telecare_centre_when_idle_and_queue_when_busy() -> None:
    staff = Staff(StaffModel(), np.random.default_rng(3))
    gap_ms = 10 * 60_000  # longer than any call: the centre is idle at each alert
    alerts = [_alert(f"a{i}", AlertKind.SOS, "el-1", T0 + i * gap_ms) for i in range(400)]
    for a in alerts:
        staff.moves([a], a.raised_ts)
    waits_s = np.array([(staff.plans[a.alert_id].take_ms - a.raised_ts) / 1000 for a in alerts])
    assert 17 <= float(np.median(waits_s)) <= 23
    assert 0.95 <= float(np.mean(waits_s <= 60)) <= 0.995
    taken = [replace(a, status=AlertStatus.ACKNOWLEDGED) for a in alerts]
    moves = staff.moves(taken, T0 + 400 * gap_ms)
    assert {target for _, target, _ in moves} == {AlertStatus.RESOLVED} and len(moves) == 400
    # Ten alerts at once for two operators: most wait for a call to end.
    busy = Staff(StaffModel(), np.random.default_rng(4))
    burst = [_alert(f"b{i}", AlertKind.SOS, f"el-{i}", T0) for i in range(10)]
    busy.moves(burst, T0)
    assert sum(p.take_ms - T0 > 60_000 for p in busy.plans.values()) >= 6


def test_an_alert_raised_again_during_an_alerted_incident_is_a_repeat_not_a_false_alarm() -> None:
    truths = [Truth("smoke", True, "el-1", "smk-1", T0, T0)]
    alerts = [
        _alert("a1", AlertKind.SMOKE, "el-1", T0 + 60_000, AlertStatus.RESOLVED),
        _alert("a2", AlertKind.SMOKE, "el-1", T0 + 400_000),  # staff closed a1, fire burns on
        _alert("a3", AlertKind.SMOKE, "el-1", T0 + 2 * 3_600_000),  # long after: a false alarm
    ]
    s = score(truths, alerts, COUNTS, days=1.0)["smoke"]
    assert (s.detected, s.repeats, s.false_alarms) == (1, 1, 1)
