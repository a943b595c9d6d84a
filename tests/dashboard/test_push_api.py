"""Push API: the VAPID key, subscriptions per user and browser, receipts, delivery states as
the member and the dispatcher see them, against the notifier and a push stand-in."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerting.notify.service import Notifier
from alerting.notify.settings import NotifySettings
from alerting.notify.vapid import load_key, public_key_b64
from tests.dashboard.conftest import DashFleet, RaiseAlert
from tests.notify.standin import BrowserKeys, StandIn, b64url, stand_in

ClientAs = Callable[..., TestClient]


@pytest.fixture
def notify_cfg(app_client: TestClient, schema_url: str, tmp_path: Path) -> NotifySettings:
    cfg = NotifySettings(
        database_url=schema_url,
        vapid_key_path=tmp_path / "vapid.pem",
        vapid_subject="mailto:noc@eldercare-test.cn",
        allow_http_loopback=True,
        poll_s=0.2,
    )
    app_client.app.state.notify_settings = cfg  # type: ignore[attr-defined]
    return cfg


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with stand_in() as state:
        yield state


def _sub(endpoint: str, keys: BrowserKeys) -> dict[str, object]:
    return {"endpoint": endpoint, "keys": {"p256dh": keys.p256dh, "auth": b64url(keys.auth)}}


def test_vapid_key_is_the_kept_key_pair(app_client: TestClient, notify_cfg: NotifySettings) -> None:
    # Before the notifier first ran there is no key to give (and the dashboard makes none).
    assert app_client.get("/api/v1/push/vapid-public-key").status_code == 404
    notifier = Notifier(notify_cfg)
    notifier.start()
    try:
        deadline = time.monotonic() + 15
        while (resp := app_client.get("/api/v1/push/vapid-public-key")).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        notifier.stop()
    key = resp.json()["public_key"]
    raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    assert len(raw) == 65 and raw[0] == 4  # an uncompressed P-256 point (RFC 8292 §3.2)
    assert notify_cfg.vapid_key_path.stat().st_mode & 0o077 == 0
    assert key == public_key_b64(load_key(notify_cfg))  # the file the notifier signs with


def test_subscribe_list_unsubscribe(
    client_as: ClientAs, notify_cfg: NotifySettings, app_client: TestClient
) -> None:
    fam = client_as("family")
    other = client_as("family")
    keys = BrowserKeys.new()
    url = "https://push.example.net/wpush/v2/abc"
    assert fam.post("/api/v1/push/subscriptions", json=_sub(url, keys)).status_code == 201
    assert [s["endpoint"] for s in fam.get("/api/v1/push/subscriptions").json()] == [url]
    assert other.get("/api/v1/push/subscriptions").json() == []
    assert (
        other.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": url}).status_code
        == 404
    )
    assert (
        fam.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": url}).status_code
        == 204
    )
    assert fam.get("/api/v1/push/subscriptions").json() == []
    for bad in ("http://push.example.net/x", "ftp://push.example.net/x", "https:///nohost"):
        assert fam.post("/api/v1/push/subscriptions", json=_sub(bad, keys)).status_code == 422
    bad_keys = {"endpoint": url, "keys": {"p256dh": "short", "auth": "x"}}
    assert fam.post("/api/v1/push/subscriptions", json=bad_keys).status_code == 422
    anon = TestClient(app_client.app, base_url="https://testserver")
    assert anon.post("/api/v1/push/subscriptions", json=_sub(url, keys)).status_code == 401
    fam.headers.pop("X-CSRF-Token")
    assert fam.post("/api/v1/push/subscriptions", json=_sub(url, keys)).status_code == 403


def test_delivery_states_sent_delivered_read_seen_by_member_and_dispatcher(
    client_as: ClientAs,
    notify_cfg: NotifySettings,
    standin: StandIn,
    raise_alert: RaiseAlert,
    dash_fleet: DashFleet,
) -> None:
    elder = dash_fleet.elders[0]
    fam = client_as("family", elder_ids=(elder,))
    sibling = client_as("family", elder_ids=(elder,))
    stranger = client_as("family", elder_ids=(dash_fleet.elders[1],))
    disp = client_as("dispatcher")
    keys, keys2 = BrowserKeys.new(), BrowserKeys.new()
    fam.post("/api/v1/push/subscriptions", json=_sub(standin.url + "/p/1", keys))
    sibling.post("/api/v1/push/subscriptions", json=_sub(standin.url + "/p/2", keys2))
    notifier = Notifier(notify_cfg)
    notifier.start()
    try:
        time.sleep(0.5)
        alert = raise_alert(elder)
        (req,) = standin.wait_for("/p/1")
        body = keys.decrypt(req.body)
        deadline = time.monotonic() + 10
        while (
            fam.get(f"/api/v1/alerts/{alert.alert_id}/deliveries").json()["items"][0]["state"]
            != "sent"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        notifier.stop()
    receipt = {"delivery_id": body["delivery_id"], "receipt": body["receipt"], "state": "delivered"}
    wrong = {**receipt, "receipt": "not-the-token"}
    assert app_client_post(fam, "/api/v1/push/receipts", wrong) == 404
    assert app_client_post(fam, "/api/v1/push/receipts", receipt) == 204
    (mine,) = fam.get(f"/api/v1/alerts/{alert.alert_id}/deliveries").json()["items"]
    assert mine["state"] == "delivered" and mine["channel"] == "push"
    assert mine["delivered_ts"] is not None and mine["history"][0]["status_code"] == 201
    assert fam.post(f"/api/v1/alerts/{alert.alert_id}/read").json() == {"read": 1}
    (mine,) = fam.get(f"/api/v1/alerts/{alert.alert_id}/deliveries").json()["items"]
    assert mine["state"] == "read"
    everyone = disp.get(f"/api/v1/alerts/{alert.alert_id}/deliveries").json()["items"]
    assert len(everyone) == 2 and {d["username"] for d in everyone} >= {mine["username"]}
    assert stranger.get(f"/api/v1/alerts/{alert.alert_id}/deliveries").status_code == 404
    assert stranger.post(f"/api/v1/alerts/{alert.alert_id}/read").status_code == 404


def app_client_post(client: TestClient, path: str, body: dict[str, object]) -> int:
    """POST without the session (as a service worker's fetch of a capability would)."""
    anon = TestClient(client.app, base_url="https://testserver")
    return anon.post(path, json=body).status_code
