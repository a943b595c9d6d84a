"""Live feed over websockets: event ids from the database, exact resume, visibility."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from dashboard.deps import SESSION_COOKIE
from tests.dashboard.conftest import BASE_URL, WS_BASE, DashFleet, RaiseAlert

ClientAs = Callable[..., TestClient]
KINDS = ("sos", "fall", "wandering", "smoke", "inactivity", "device_offline", "low_battery")


def _raise_many(raise_alert: RaiseAlert, fleet: DashFleet, n: int) -> list[str]:
    """n new alerts (distinct elder and kind), returned in the order raised."""
    pairs = [(e, k) for k in KINDS for e in fleet.elders][:n]
    assert len(pairs) == n
    return [raise_alert(e, k).alert_id for e, k in pairs]


def _receive(ws: Any, n: int) -> list[dict[str, Any]]:
    return [ws.receive_json() for _ in range(n)]


def test_feed_needs_a_session(app_client: TestClient) -> None:
    with (
        app_client.websocket_connect(f"{WS_BASE}/api/v1/feed") as ws,
        pytest.raises(WebSocketDisconnect) as err,
    ):
        ws.receive_json()
    assert err.value.code == 4401


def test_feed_refuses_another_origin(client_as: ClientAs) -> None:
    disp = client_as("dispatcher")
    headers = {"origin": "https://evil.example"}
    with (
        disp.websocket_connect(f"{WS_BASE}/api/v1/feed", headers=headers) as ws,
        pytest.raises(WebSocketDisconnect) as err,
    ):
        ws.receive_json()
    assert err.value.code == 4403


def test_live_events_carry_the_alert_the_transition_and_the_actor(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    disp = client_as("dispatcher")
    name = disp.get("/api/v1/auth/me").json()["user"]["username"]
    with disp.websocket_connect(f"{WS_BASE}/api/v1/feed") as ws:
        alert = raise_alert(dash_fleet.elders[0])
        raised = ws.receive_json()
        assert raised["alert"]["alert_id"] == alert.alert_id
        assert raised["alert"]["v"] == 1 and raised["alert"]["elder_name"] == "Elder 0"
        assert raised["transition"]["from_status"] is None
        assert raised["transition"]["to_status"] == "open"
        assert disp.post(f"/api/v1/alerts/{alert.alert_id}/ack").status_code == 200
        taken = ws.receive_json()
        assert taken["event_id"] > raised["event_id"]
        assert taken["transition"]["to_status"] == "acknowledged"
        assert taken["transition"]["actor"] == name
        assert taken["alert"]["taken_by"] == name


def _resume_check(
    disp: TestClient, last_id: int, expected_alerts: list[str], marker: Callable[[], str]
) -> None:
    """Reconnect after `last_id`: exactly the expected raises, in order, then the marker."""
    with disp.websocket_connect(f"{WS_BASE}/api/v1/feed?after={last_id}") as ws:
        got = _receive(ws, len(expected_alerts))
        assert [m["alert"]["alert_id"] for m in got] == expected_alerts
        assert all(m["transition"]["to_status"] == "open" for m in got)
        ids = [m["event_id"] for m in got]
        assert ids == sorted(ids) and len(set(ids)) == len(ids) and ids[0] > last_id
        marker_id = marker()
        nxt = ws.receive_json()
        assert nxt["alert"]["alert_id"] == marker_id and nxt["event_id"] > ids[-1]


def test_reconnect_with_the_last_id_gets_exactly_what_was_missed(
    app_client: TestClient, client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    disp = client_as("dispatcher")
    with disp.websocket_connect(f"{WS_BASE}/api/v1/feed") as ws:
        first = raise_alert(dash_fleet.elders[0], "anomaly")
        last = ws.receive_json()
        assert last["alert"]["alert_id"] == first.alert_id
    missed = _raise_many(raise_alert, dash_fleet, 20)
    _resume_check(
        disp,
        last["event_id"],
        missed,
        lambda: raise_alert(dash_fleet.elders[1], "anomaly").alert_id,
    )
    hub: Any = app_client.app.state.hub  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while hub.subscribers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not hub.subscribers  # a closed client leaves nothing behind


def test_resume_holds_across_a_dashboard_restart(
    app_factory: Callable[..., FastAPI],
    client_as: ClientAs,
    raise_alert: RaiseAlert,
    dash_fleet: DashFleet,
) -> None:
    disp = client_as("dispatcher")
    with disp.websocket_connect(f"{WS_BASE}/api/v1/feed") as ws:
        raise_alert(dash_fleet.elders[0], "anomaly")
        last = ws.receive_json()
    session = disp.cookies[SESSION_COOKIE]
    csrf = disp.headers["X-CSRF-Token"]
    missed = _raise_many(raise_alert, dash_fleet, 10)
    # A new app instance (a restarted process) while the events keep coming.
    with TestClient(app_factory(), base_url=BASE_URL) as restarted:
        missed += [
            raise_alert(e, "low_battery").alert_id for e in dash_fleet.elders
        ] + _raise_extra(raise_alert, dash_fleet)
        restarted.cookies.set(SESSION_COOKIE, session)
        restarted.headers["X-CSRF-Token"] = csrf
        _resume_check(
            restarted,
            last["event_id"],
            missed,
            lambda: raise_alert(dash_fleet.elders[1], "anomaly").alert_id,
        )


def _raise_extra(raise_alert: RaiseAlert, fleet: DashFleet) -> list[str]:
    """Seven more alerts of kinds `_raise_many(…, 10)` left unused."""
    pairs = [(e, k) for k in KINDS for e in fleet.elders][10:]
    pairs = [(e, k) for e, k in pairs if k != "low_battery"][:7]
    return [raise_alert(e, k).alert_id for e, k in pairs]


def test_two_dashboard_processes_send_the_same_events(
    app_factory: Callable[..., FastAPI],
    client_as: ClientAs,
    raise_alert: RaiseAlert,
    dash_fleet: DashFleet,
) -> None:
    disp = client_as("dispatcher")
    with TestClient(app_factory(), base_url=BASE_URL) as second:
        second.cookies.set(SESSION_COOKIE, disp.cookies[SESSION_COOKIE])
        with (
            disp.websocket_connect(f"{WS_BASE}/api/v1/feed") as ws1,
            second.websocket_connect(f"{WS_BASE}/api/v1/feed") as ws2,
        ):
            raised = _raise_many(raise_alert, dash_fleet, 12)
            got1, got2 = _receive(ws1, 12), _receive(ws2, 12)
    assert [m["event_id"] for m in got1] == [m["event_id"] for m in got2]
    assert [m["alert"]["alert_id"] for m in got1] == raised


def test_family_feed_carries_only_linked_elders(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    fam = client_as("family", elder_ids=(dash_fleet.elders[0],))
    with fam.websocket_connect(f"{WS_BASE}/api/v1/feed") as ws:
        before = raise_alert(dash_fleet.elders[0], "sos")
        first = ws.receive_json()
        other = raise_alert(dash_fleet.elders[1], "sos")
        mine = raise_alert(dash_fleet.elders[0], "fall")
        nxt = ws.receive_json()
    assert first["alert"]["alert_id"] == before.alert_id
    assert nxt["alert"]["alert_id"] == mine.alert_id
    # The same holds for a resumed backlog.
    with fam.websocket_connect(f"{WS_BASE}/api/v1/feed?after={first['event_id']}") as ws:
        assert ws.receive_json()["alert"]["alert_id"] == mine.alert_id
        late = raise_alert(dash_fleet.elders[0], "smoke")
        assert ws.receive_json()["alert"]["alert_id"] == late.alert_id
    assert other.alert_id not in (first["alert"]["alert_id"], nxt["alert"]["alert_id"])


def test_every_other_console_sees_taken_by_within_a_second(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    taker, other = client_as("dispatcher"), client_as("dispatcher")
    elsewhere = client_as("dispatcher", center_id=dash_fleet.center_b)
    name = taker.get("/api/v1/auth/me").json()["user"]["username"]
    with (
        other.websocket_connect(f"{WS_BASE}/api/v1/feed") as ws1,
        elsewhere.websocket_connect(f"{WS_BASE}/api/v1/feed") as ws2,
    ):
        alert = raise_alert(dash_fleet.elders[0])
        assert ws1.receive_json()["alert"]["alert_id"] == alert.alert_id
        assert ws2.receive_json()["alert"]["alert_id"] == alert.alert_id
        assert taker.post(f"/api/v1/alerts/{alert.alert_id}/ack").status_code == 200
        t0 = time.monotonic()
        seen = [ws1.receive_json(), ws2.receive_json()]
        elapsed_s = time.monotonic() - t0
    for msg in seen:
        assert msg["alert"]["taken_by"] == name
        assert msg["transition"]["to_status"] == "acknowledged"
    assert elapsed_s < 1.0


def test_signing_out_closes_the_sessions_feed_with_4401(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    leaving, staying = client_as("dispatcher"), client_as("dispatcher")
    with (
        leaving.websocket_connect(f"{WS_BASE}/api/v1/feed") as ws1,
        staying.websocket_connect(f"{WS_BASE}/api/v1/feed") as ws2,
    ):
        assert leaving.post("/api/v1/auth/logout", json={}).status_code == 204
        with pytest.raises(WebSocketDisconnect) as err:
            ws1.receive_json()
        assert err.value.code == 4401
        alert = raise_alert(dash_fleet.elders[0])
        assert ws2.receive_json()["alert"]["alert_id"] == alert.alert_id


@pytest.mark.parametrize("after", ["-1", str(2**63)], ids=["negative", "past-bigint"])
def test_an_impossible_resume_point_is_refused(client_as: ClientAs, after: str) -> None:
    disp = client_as("dispatcher")
    with (
        disp.websocket_connect(f"{WS_BASE}/api/v1/feed?after={after}") as ws,
        pytest.raises(WebSocketDisconnect) as err,
    ):
        ws.receive_json()
    assert err.value.code == 4403
