"""Family API: preferences, "I'm going" on the shared incident, the family's elders with a
position only while an alert is open, and no family ever seeing another family's elder."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from tests.dashboard.conftest import WS_BASE, DashFleet, RaiseAlert
from tests.dashboard.telemetry_rows import add_band

ClientAs = Callable[..., TestClient]


def test_preferences_default_update_and_validation(client_as: ClientAs) -> None:
    fam = client_as("family")
    got = fam.get("/api/v1/me/preferences").json()
    assert got["time_zone"] == "Asia/Shanghai" and got["quiet_from"] is None
    assert "sos" in got["kinds"] and got["language"] == "zh-CN"
    new = {"kinds": ["sos", "fall", "wandering"], "quiet_from": "22:30", "quiet_to": "07:00",
           "time_zone": "Europe/Berlin", "language": "en"}  # fmt: skip
    assert fam.put("/api/v1/me/preferences", json=new).json() == {**new}
    assert fam.get("/api/v1/me/preferences").json() == new
    assert fam.get("/api/v1/auth/me").json()["user"]["language"] == "en"
    for bad in (
        {**new, "time_zone": "Mars/Olympus"},
        {**new, "quiet_from": "25:00"},
        {**new, "quiet_to": None},
        {**new, "kinds": ["sos", "tea"]},
        {**new, "language": "fr"},
    ):
        assert fam.put("/api/v1/me/preferences", json=bad).status_code == 422, bad
    csrf_less = fam.headers.pop("X-CSRF-Token")
    assert fam.put("/api/v1/me/preferences", json=new).status_code == 403
    fam.headers["X-CSRF-Token"] = csrf_less


def test_going_reaches_the_dispatcher_and_the_other_members_not_other_families(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    mine, theirs = dash_fleet.elders[0], dash_fleet.elders[1]
    son = client_as("family", elder_ids=(mine,))
    daughter = client_as("family", elder_ids=(mine,))
    stranger = client_as("family", elder_ids=(theirs,))
    disp = client_as("dispatcher")
    son_name = son.get("/api/v1/auth/me").json()["user"]["username"]
    alert = raise_alert(mine)
    with (
        disp.websocket_connect(f"{WS_BASE}/api/v1/feed") as disp_ws,
        daughter.websocket_connect(f"{WS_BASE}/api/v1/feed") as fam_ws,
        stranger.websocket_connect(f"{WS_BASE}/api/v1/feed") as other_ws,
    ):
        t0 = time.monotonic()
        resp = son.post(f"/api/v1/alerts/{alert.alert_id}/going")
        assert resp.status_code == 201
        for ws in (disp_ws, fam_ws):
            event = ws.receive_json()
            if event["transition"]["from_status"] is None:  # the raise, if not yet fanned out
                event = ws.receive_json()
            assert event["alert"]["alert_id"] == alert.alert_id
            assert event["transition"]["note"] == "going"
            assert event["transition"]["actor"] == son_name
            assert event["event_id"] == resp.json()["id"]
        assert time.monotonic() - t0 < 2.0
        # The stranger's feed carries their own elder's alert, never ours.
        own = raise_alert(theirs)
        assert other_ws.receive_json()["alert"]["alert_id"] == own.alert_id
        disp_ws.receive_json()  # the dispatcher sees both elders
    history = disp.get(f"/api/v1/alerts/{alert.alert_id}").json()["history"]
    assert [h["note"] for h in history if h["actor"] == son_name] == ["going"]
    assert stranger.post(f"/api/v1/alerts/{alert.alert_id}/going").status_code == 404
    assert disp.post(f"/api/v1/alerts/{alert.alert_id}/going").status_code == 403


def test_going_on_a_closed_alert_is_a_conflict(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet
) -> None:
    fam = client_as("family")
    disp = client_as("dispatcher")
    alert = raise_alert(dash_fleet.elders[0])
    assert disp.post(f"/api/v1/alerts/{alert.alert_id}/ack").status_code == 200
    assert (
        disp.post(f"/api/v1/alerts/{alert.alert_id}/resolve", json={"outcome": "visit"}).status_code
        == 200
    )
    assert fam.post(f"/api/v1/alerts/{alert.alert_id}/going").status_code == 409


def test_position_only_while_an_alert_is_open(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet, schema_url: str
) -> None:
    elder = dash_fleet.elders[0]
    now = int(time.time() * 1000)
    with psycopg.connect(schema_url) as conn:
        add_band(conn, dash_fleet.device(elder, "band"), [(now - 5000, 39.9311, 116.3712, 70, 5)])
        conn.commit()
    fam = client_as("family", elder_ids=(elder,))

    def mine() -> dict[str, Any]:
        (card,) = fam.get("/api/v1/family/elders").json()["elders"]
        return dict(card)

    card = mine()
    assert card["id"] == elder and card["alert_open"] is False and card["position"] is None
    assert {d["type"] for d in card["devices"]} == {"button", "band", "cane", "smoke"}
    assert all("lat" not in d for d in card["devices"])
    alert = raise_alert(elder)
    card = mine()
    assert card["alert_open"] is True
    assert card["position"]["lat"] == 39.9311 and card["position"]["lon"] == 116.3712
    disp = client_as("dispatcher")
    disp.post(f"/api/v1/alerts/{alert.alert_id}/ack")
    disp.post(f"/api/v1/alerts/{alert.alert_id}/resolve", json={"outcome": "false_alarm"})
    assert mine()["position"] is None
    assert disp.get("/api/v1/family/elders").status_code == 403


def test_family_page_manifest_and_service_worker_are_served(app_client: TestClient) -> None:
    page = app_client.get("/family")
    assert page.status_code == 200 and "manifest.webmanifest" in page.text
    manifest = app_client.get("/family/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    body = manifest.json()
    assert body["scope"] == "/family" and body["display"] == "standalone"
    assert any(i["sizes"] == "192x192" for i in body["icons"])
    sw = app_client.get("/family/sw.js")
    assert sw.status_code == 200 and "push" in sw.text
    assert sw.headers["service-worker-allowed"] == "/family"
