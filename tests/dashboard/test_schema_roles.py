"""Every registry, telemetry, centre, KPI, map and admin route, per role: 200/401/403/404/422."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.dashboard.conftest import DashFleet, RaiseAlert

ClientAs = Callable[..., TestClient]

# (method, path template, body, expected status for admin, dispatcher, family, anonymous).
# {mine} is the family account's elder, {other} an elder it is not linked to.
MATRIX: list[tuple[str, str, object, tuple[int, int, int, int]]] = [
    ("GET", "/api/v1/elders", None, (200, 200, 200, 401)),
    ("GET", "/api/v1/elders?limit=0", None, (422, 422, 422, 401)),
    ("GET", "/api/v1/elders/{mine}", None, (200, 200, 200, 401)),
    ("GET", "/api/v1/elders/{other}", None, (200, 200, 404, 401)),
    ("GET", "/api/v1/elders/el-unknown", None, (404, 404, 404, 401)),
    ("GET", "/api/v1/devices/band-{mine}", None, (200, 200, 200, 401)),
    ("GET", "/api/v1/devices/band-{other}", None, (200, 200, 404, 401)),
    ("GET", "/api/v1/devices/band-{other}/telemetry", None, (200, 200, 404, 401)),
    ("GET", "/api/v1/devices/band-{mine}/telemetry?bucket_s=0", None, (422, 422, 422, 401)),
    ("GET", "/api/v1/alerts/{alert_mine}/telemetry", None, (200, 200, 200, 401)),
    ("GET", "/api/v1/alerts/{alert_other}/telemetry", None, (200, 200, 404, 401)),
    ("GET", "/api/v1/centers", None, (200, 200, 200, 401)),
    ("POST", "/api/v1/centers/{center}/duty", {"on_duty": True}, (200, 403, 403, 401)),
    ("POST", "/api/v1/centers/{center}/duty", {"on_duty": None}, (422, 403, 403, 401)),
    ("GET", "/api/v1/kpi", None, (200, 200, 403, 401)),
    ("GET", "/api/v1/kpi?since_ts=-1", None, (422, 422, 403, 401)),
    ("GET", "/api/v1/map/district", None, (200, 200, 200, 401)),
    ("GET", "/api/v1/admin/dead-letters", None, (200, 403, 403, 401)),
    ("GET", "/api/v1/admin/dead-letters?limit=0", None, (422, 403, 403, 401)),
    ("GET", "/api/v1/admin/dead-letters/1", None, (404, 403, 403, 401)),
    ("POST", "/api/v1/admin/registry", {"elders": "none"}, (422, 403, 403, 401)),
    ("POST", "/api/v1/admin/registry", {}, (200, 403, 403, 401)),
    ("GET", "/api/v1/admin/users", None, (200, 403, 403, 401)),
    ("POST", "/api/v1/admin/users", {"username": "x"}, (422, 403, 403, 401)),
    ("GET", "/api/v1/admin/audit", None, (200, 403, 403, 401)),
    ("GET", "/healthz", None, (200, 200, 200, 200)),
    ("GET", "/readyz", None, (200, 200, 200, 200)),
    ("GET", "/metrics", None, (200, 200, 200, 200)),
]


def test_every_route_answers_each_role_as_documented(
    client_as: ClientAs, app_client: TestClient, dash_fleet: DashFleet, raise_alert: RaiseAlert
) -> None:
    mine, other = dash_fleet.elders[0], dash_fleet.elders[1]
    ids = {
        "mine": mine,
        "other": other,
        "alert_mine": raise_alert(mine).alert_id,
        "alert_other": raise_alert(other).alert_id,
        "center": dash_fleet.center_a,
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
            got = client.request(method, path, json=body)
            if got.status_code != want:
                wrong.append(f"{role} {method} {path}: {got.status_code} != {want}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", ["/api/v1/centers/{center}/duty", "/api/v1/admin/registry"])
def test_writes_need_the_csrf_token(path: str, client_as: ClientAs, dash_fleet: DashFleet) -> None:
    admin = client_as("admin")
    admin.headers.pop("X-CSRF-Token")
    got = admin.post(path.format(center=dash_fleet.center_a), json={"on_duty": True})
    assert got.status_code == 403
