"""Care centres: coverage and open load for every role; the duty switch for admins only."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from fastapi.testclient import TestClient

from alerting.dispatch_cli import DUTY_CHANNEL
from dashboard.deps import CSRF_HEADER
from ingest.registry import load_centers_on_duty
from tests.dashboard.conftest import DashFleet, RaiseAlert

ClientAs = Callable[..., TestClient]


def test_centres_with_coverage_and_open_load(
    client_as: ClientAs, dash_fleet: DashFleet, raise_alert: RaiseAlert
) -> None:
    raise_alert(dash_fleet.elders[0], "sos", center_id=dash_fleet.center_b)
    raise_alert(dash_fleet.elders[1], "sos", center_id=dash_fleet.center_b)
    centers = {c["id"]: c for c in client_as("family").get("/api/v1/centers").json()}
    assert centers[dash_fleet.center_a]["open_incidents"] == 0
    assert centers[dash_fleet.center_b]["open_incidents"] == 2
    assert centers[dash_fleet.center_a]["coverage_radius_m"] == pytest.approx(564.2)
    assert centers[dash_fleet.center_a]["on_duty"] is True


def test_duty_switch_is_admin_only_and_audited(
    client_as: ClientAs, dash_fleet: DashFleet, schema_url: str, app_client: TestClient
) -> None:
    url = f"/api/v1/centers/{dash_fleet.center_a}/duty"
    for role in ("dispatcher", "family"):
        assert client_as(role).post(url, json={"on_duty": False}).status_code == 403
    admin = client_as("admin")
    assert app_client.post(url, json={"on_duty": False}).status_code == 401
    token = admin.headers.pop(CSRF_HEADER)
    assert admin.post(url, json={"on_duty": False}).status_code == 403
    admin.headers[CSRF_HEADER] = token
    assert admin.post(url, json={"on_duty": "maybe"}).status_code == 422
    assert admin.post("/api/v1/centers/cc-none/duty", json={"on_duty": False}).status_code == 404
    with psycopg.connect(schema_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {DUTY_CHANNEL}")
        got = admin.post(url, json={"on_duty": False})
        woken = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert got.status_code == 200 and got.json()["on_duty"] is False
    assert woken == [dash_fleet.center_a]  # the alerting service re-routes at once
    with psycopg.connect(schema_url) as conn:
        duty = {c.id: d for c, d in load_centers_on_duty(conn)}
        audit = conn.execute(
            "SELECT action, target, detail FROM audit WHERE action = 'center.duty'"
        ).fetchall()
    assert duty == {dash_fleet.center_a: False, dash_fleet.center_b: True}
    assert audit == [("center.duty", dash_fleet.center_a, {"on_duty": False})]
