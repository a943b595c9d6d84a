"""Every notification and family route, per role: admin, dispatcher, family, anonymous.
A family account gets 404 for anything of an elder not linked to it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from alerting.notify.db import publish_public_key
from alerting.notify.settings import NotifySettings
from tests.dashboard.conftest import DashFleet, RaiseAlert

ClientAs = Callable[..., TestClient]
HOOK = "https://gateway.example.cn/sms"

# (method, path template, body, expected status for admin, dispatcher, family, anonymous).
MATRIX: list[tuple[str, str, object, tuple[int, int, int, int]]] = [
    ("GET", "/api/v1/push/vapid-public-key", None, (200, 200, 200, 200)),
    ("GET", "/api/v1/push/subscriptions", None, (200, 200, 200, 401)),
    ("POST", "/api/v1/push/subscriptions", {}, (422, 422, 422, 401)),
    ("DELETE", "/api/v1/push/subscriptions", {"endpoint": "https://p.example/x"},
     (404, 404, 404, 401)),
    ("POST", "/api/v1/push/receipts", {"delivery_id": 1, "receipt": "abcdefgh", "state": "read"},
     (404, 404, 404, 404)),
    ("POST", "/api/v1/webhooks", {"url": HOOK}, (422, 422, 201, 401)),
    ("POST", "/api/v1/webhooks", {"url": HOOK, "center_id": "{center}"}, (201, 201, 403, 401)),
    ("POST", "/api/v1/webhooks", {"url": HOOK, "center_id": "{center_b}"}, (201, 403, 403, 401)),
    ("GET", "/api/v1/webhooks", None, (200, 200, 200, 401)),
    ("DELETE", "/api/v1/webhooks/999999", None, (404, 404, 404, 401)),
    ("GET", "/api/v1/alerts/{alert_mine}/deliveries", None, (200, 200, 200, 401)),
    ("GET", "/api/v1/alerts/{alert_other}/deliveries", None, (200, 200, 404, 401)),
    ("GET", "/api/v1/alerts/al-unknown/deliveries", None, (404, 404, 404, 401)),
    ("GET", "/api/v1/admin/notify/failed", None, (200, 403, 403, 401)),
    ("GET", "/api/v1/admin/notify/failed?limit=0", None, (422, 403, 403, 401)),
    ("GET", "/api/v1/me/preferences", None, (200, 200, 200, 401)),
    ("PUT", "/api/v1/me/preferences", {}, (200, 200, 200, 401)),
    ("POST", "/api/v1/alerts/{alert_mine}/read", None, (200, 200, 200, 401)),
    ("POST", "/api/v1/alerts/{alert_other}/read", None, (200, 200, 404, 401)),
    ("POST", "/api/v1/alerts/{alert_other}/going", None, (403, 403, 404, 401)),
    ("POST", "/api/v1/alerts/{alert_mine}/going", None, (403, 403, 201, 401)),
    ("GET", "/api/v1/family/elders", None, (403, 403, 200, 401)),
    ("GET", "/family", None, (200, 200, 200, 200)),
    ("GET", "/family/sw.js", None, (200, 200, 200, 200)),
    ("GET", "/family/icon-192.png", None, (200, 200, 200, 200)),
    ("GET", "/family/icon-64.png", None, (422, 422, 422, 422)),
]  # fmt: skip


def _fill(body: object, ids: dict[str, str]) -> object:
    if isinstance(body, dict):
        return {k: v.format(**ids) if isinstance(v, str) else v for k, v in body.items()}
    return body


def test_every_notification_route_answers_each_role_as_documented(
    client_as: ClientAs,
    app_client: TestClient,
    dash_fleet: DashFleet,
    raise_alert: RaiseAlert,
    schema_url: str,
    tmp_path: Path,
) -> None:
    app_client.app.state.notify_settings = NotifySettings(  # type: ignore[attr-defined]
        database_url=schema_url, vapid_key_path=tmp_path / "v.pem"
    )
    with psycopg.connect(schema_url, autocommit=True) as conn:
        publish_public_key(conn, "BPublicKeyOfTheNotifier", 1)
    mine, other = dash_fleet.elders[0], dash_fleet.elders[1]
    ids = {
        "alert_mine": raise_alert(mine).alert_id,
        "alert_other": raise_alert(other).alert_id,
        "center": dash_fleet.center_a,
        "center_b": dash_fleet.center_b,
    }
    clients = [
        client_as("admin"),
        client_as("dispatcher"),
        client_as("family", elder_ids=(mine,)),
        app_client,
    ]
    wrong = []
    for method, template, body, expected in MATRIX:
        path = template.format(**ids)
        for client, want, role in zip(
            clients, expected, ("admin", "disp", "family", "anon"), strict=True
        ):
            got = client.request(method, path, json=_fill(body, ids))
            if got.status_code != want:
                wrong.append(f"{role} {method} {path}: {got.status_code} != {want}")
    assert not wrong, "\n".join(wrong)
