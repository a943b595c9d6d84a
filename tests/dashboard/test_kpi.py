"""The answer-time panel equals a recomputation from the transition log and the audit trail."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from alerting import store
from gateway.contract import AlertStatus
from tests.dashboard.conftest import DashFleet, RaiseAlert

ClientAs = Callable[..., TestClient]
KINDS = ("sos", "fall", "smoke", "wandering", "inactivity")


def _recompute(schema_url: str, since: int, until: int) -> dict[str | None, dict[str, Any]]:
    """The panel from first principles: the first take or close by an account, per alarm."""
    with psycopg.connect(schema_url) as conn:
        rows = conn.execute(
            "SELECT t.alert_id, t.at_ts, t.center_id, a.raised_ts FROM alert_transitions AS t"
            " JOIN alerts AS a USING (alert_id) WHERE t.user_id IS NOT NULL"
            " AND t.to_status IN ('acknowledged', 'resolved') ORDER BY t.at_ts, t.id"
        ).fetchall()
        audit = conn.execute(
            "SELECT target, at_ts FROM audit WHERE action = 'take' ORDER BY id"
        ).fetchall()
    first: dict[str, tuple[str, int]] = {}
    for alert_id, at_ts, center_id, raised_ts in rows:
        if since <= raised_ts <= until:
            first.setdefault(alert_id, (center_id, at_ts - raised_ts))
    taken_at = {target: at for target, at in audit}
    assert set(taken_at) == set(first)  # every answer is in the audit trail, and only those
    groups: dict[str | None, list[int]] = {None: []}
    for center_id, ms in first.values():
        groups.setdefault(center_id, []).append(ms)
        groups[None].append(ms)
    return {
        c: {
            "answered": len(ms),
            "within_60s": sum(m <= 60_000 for m in ms),
            "within_180s": sum(m <= 180_000 for m in ms),
            "share_60s": sum(m <= 60_000 for m in ms) / len(ms),
            "share_180s": sum(m <= 180_000 for m in ms) / len(ms),
            "median_answer_s": statistics.median(ms) / 1000,
        }
        for c, ms in groups.items()
    }


def test_panel_counts_only_alarms_a_person_answered(
    client_as: ClientAs,
    app_client: TestClient,
    dash_fleet: DashFleet,
    raise_alert: RaiseAlert,
    schema_url: str,
) -> None:
    a, b = dash_fleet.center_a, dash_fleet.center_b
    disp = {a: client_as("dispatcher", center_id=a), b: client_as("dispatcher", center_id=b)}
    t0 = int(time.time() * 1000) - 3_600_000
    plan = [(a, 10), (a, 59), (a, 61), (a, 170), (a, 200), (b, 30), (b, 400), (a, None), (b, None)]
    slots = [(e, k) for k in KINDS for e in dash_fleet.elders]
    raised = []
    for i, ((center, delay_s), (elder, kind)) in enumerate(zip(plan, slots, strict=False)):
        raised_ts = t0 + i * 1_000
        alert = raise_alert(elder, kind, center_id=center, now_ms=raised_ts)
        raised.append(alert)
        if delay_s is not None:
            app_client.app.state.clock = lambda at=raised_ts + delay_s * 1000: at  # type: ignore[attr-defined]
            got = disp[center].post(f"/api/v1/alerts/{alert.alert_id}/ack")
            assert got.status_code == 200, got.text
    # Acknowledged by the platform, not by a person: not an answer.
    with psycopg.connect(schema_url) as conn:
        store.transition(
            conn, raised[-1].alert_id, AlertStatus.ACKNOWLEDGED, "system", "", t0 + 5_000
        )
    until = t0 + 3_600_000
    panel = disp[a].get("/api/v1/kpi", params={"since_ts": t0, "until_ts": until}).json()
    expected = _recompute(schema_url, t0, until)
    by_center = {k["center_id"]: k for k in panel["centers"]}
    for center, figures in expected.items():
        got = panel["overall"] if center is None else by_center[center]
        assert {k: got[k] for k in figures} == figures, center
    assert (by_center[a]["answered"], by_center[a]["within_60s"], by_center[a]["within_180s"]) == (
        5,
        2,
        4,
    )
    assert by_center[a]["median_answer_s"] == 61
    assert (panel["overall"]["answered"], by_center[b]["median_answer_s"]) == (7, 215)
    assert panel["targets"] == [{"within_s": 60, "share": 0.975}, {"within_s": 180, "share": 0.99}]


def test_period_filter_and_empty_panel(client_as: ClientAs, dash_fleet: DashFleet) -> None:
    assert client_as("family").get("/api/v1/kpi").status_code == 403
    c = client_as("admin")
    panel = c.get("/api/v1/kpi", params={"since_ts": 1_000, "until_ts": 2_000}).json()
    assert panel["overall"] == {
        "center_id": None,
        "answered": 0,
        "within_60s": 0,
        "within_180s": 0,
        "share_60s": None,
        "share_180s": None,
        "median_answer_s": None,
    }
    assert {k["center_id"] for k in panel["centers"]} == {dash_fleet.center_a, dash_fleet.center_b}
    assert c.get("/api/v1/kpi", params={"since_ts": 5, "until_ts": 1}).status_code == 422
