"""Webhook API: registration returns the secret once; family members register their own,
centres' are registered by their dispatchers or admins; the admin view of failed deliveries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerting.notify.settings import NotifySettings
from tests.dashboard.conftest import DashFleet

ClientAs = Callable[..., TestClient]


@pytest.fixture(autouse=True)
def _notify_cfg(app_client: TestClient, schema_url: str, tmp_path: Path) -> None:
    app_client.app.state.notify_settings = NotifySettings(  # type: ignore[attr-defined]
        database_url=schema_url, vapid_key_path=tmp_path / "v.pem"
    )


def test_family_webhook_secret_once(client_as: ClientAs) -> None:
    fam = client_as("family")
    other = client_as("family")
    resp = fam.post("/api/v1/webhooks", json={"url": "https://sms.example.cn/hook"})
    assert resp.status_code == 201
    hook = resp.json()
    assert hook["secret"].startswith("whsec_") and hook["channel"] == "message"
    listed = fam.get("/api/v1/webhooks").json()
    assert [h["id"] for h in listed] == [hook["id"]] and listed[0]["secret"] is None
    assert other.get("/api/v1/webhooks").json() == []
    assert other.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 404
    assert fam.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert fam.post("/api/v1/webhooks", json={"url": "http://sms.example.cn/x"}).status_code == 422


def test_centre_webhooks_by_dispatcher_of_that_centre_or_admin(
    client_as: ClientAs, dash_fleet: DashFleet
) -> None:
    disp = client_as("dispatcher", center_id=dash_fleet.center_a)
    admin = client_as("admin")
    fam = client_as("family")
    voice = {"url": "https://voice.example.cn/call", "channel": "voice"}
    ok = disp.post("/api/v1/webhooks", json={**voice, "center_id": dash_fleet.center_a})
    assert ok.status_code == 201 and ok.json()["center_id"] == dash_fleet.center_a
    assert (
        disp.post("/api/v1/webhooks", json={**voice, "center_id": dash_fleet.center_b}).status_code
        == 403
    )
    assert (
        fam.post("/api/v1/webhooks", json={**voice, "center_id": dash_fleet.center_a}).status_code
        == 403
    )
    assert disp.post("/api/v1/webhooks", json=voice).status_code == 422
    assert (
        admin.post("/api/v1/webhooks", json={**voice, "center_id": dash_fleet.center_b}).status_code
        == 201
    )
    assert [h["center_id"] for h in disp.get("/api/v1/webhooks").json()] == [dash_fleet.center_a]
    assert len(admin.get("/api/v1/webhooks").json()) == 2


def test_failed_deliveries_are_admin_only(client_as: ClientAs) -> None:
    assert client_as("admin").get("/api/v1/admin/notify/failed").json() == {"items": []}
    assert client_as("dispatcher").get("/api/v1/admin/notify/failed").status_code == 403
    assert client_as("family").get("/api/v1/admin/notify/failed").status_code == 403
