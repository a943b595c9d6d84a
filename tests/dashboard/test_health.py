"""Liveness, readiness (database and broker) and Prometheus metrics."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from eldercare.broker import free_port
from tests.dashboard.conftest import BASE_URL, DashFleet

ClientAs = Callable[..., TestClient]


def test_healthz_and_readyz_need_no_login(app_client: TestClient) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    got = app_client.get("/readyz")
    assert got.status_code == 200
    assert got.json() == {"status": "ready", "database": True, "broker": True}


def test_readyz_is_503_without_the_broker(app_factory: Callable[..., FastAPI]) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"
    with TestClient(app_factory(mqtt_url=dead, mqtt_publish=False), base_url=BASE_URL) as c:
        got = c.get("/readyz")
        assert got.status_code == 503
        assert got.json() == {"status": "not ready", "database": True, "broker": False}
        assert c.get("/healthz").status_code == 200


def test_readyz_is_503_without_the_database(app_factory: Callable[..., FastAPI]) -> None:
    with TestClient(app_factory(), base_url=BASE_URL) as c:
        c.app.state.pool.close()  # type: ignore[attr-defined]
        got = c.get("/readyz")
        assert got.status_code == 503 and got.json()["database"] is False


def _sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if m and ",".join(sorted((m.group(1) or "").split(","))) == want:
            return float(m.group(2))
    return 0.0


def test_metrics_count_requests_by_route_template(
    client_as: ClientAs, dash_fleet: DashFleet, app_client: TestClient
) -> None:
    c = client_as("dispatcher")
    for elder in dash_fleet.elders:
        assert c.get(f"/api/v1/elders/{elder}").status_code == 200
    assert c.get("/api/v1/elders/el-nobody").status_code == 404
    text = app_client.get("/metrics").text
    route = "/api/v1/elders/{elder_id}"
    total = "dashboard_http_requests_total"
    assert _sample(text, total, method="GET", route=route, status="200") == 3
    assert _sample(text, total, method="GET", route=route, status="404") == 1
    assert (
        _sample(text, "dashboard_http_request_duration_seconds_count", method="GET", route=route)
        == 4
    )
    assert "el-nobody" not in text  # raw paths never become label values
    assert _sample(text, "dashboard_websocket_clients") == 0


def test_metrics_count_websocket_clients(client_as: ClientAs, app_client: TestClient) -> None:
    c = client_as("dispatcher")
    # wss, so the Secure session cookie goes with the handshake as a browser sends it.
    with c.websocket_connect("wss://testserver/api/v1/feed?after=0"):
        text = app_client.get("/metrics").text
        assert _sample(text, "dashboard_websocket_clients") == 1
    text = app_client.get("/metrics").text
    assert _sample(text, "dashboard_websocket_clients") == 0
    assert _sample(text, "dashboard_websocket_connections_total") == 1
