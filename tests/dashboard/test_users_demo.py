"""Demo accounts of `eldercare up`: one per role, bound to the first centre and elder."""

from __future__ import annotations

import time

import psycopg
from fastapi.testclient import TestClient

from dashboard.accounts import Role
from dashboard.demo import DEMO_PASSWORD, ensure_demo_accounts
from tests.dashboard.conftest import DashFleet


def test_demo_accounts_log_in_with_their_roles_and_are_created_once(
    app_client: TestClient, schema_url: str, dash_fleet: DashFleet
) -> None:
    with psycopg.connect(schema_url) as conn:
        first = ensure_demo_accounts(conn, int(time.time() * 1000))
        second = ensure_demo_accounts(conn, int(time.time() * 1000))
        count = conn.execute("SELECT count(*) FROM users").fetchone()
    assert [(a.username, a.role) for a in first] == [
        ("admin", Role.ADMIN),
        ("dispatcher", Role.DISPATCHER),
        ("family", Role.FAMILY),
    ]
    assert first == second and count == (3,)
    assert first[1].bound_to == min(dash_fleet.center_a, dash_fleet.center_b)
    assert first[2].bound_to == min(dash_fleet.elders)
    for acc in first:
        resp = app_client.post(
            "/api/v1/auth/login", json={"username": acc.username, "password": DEMO_PASSWORD}
        )
        assert resp.status_code == 200 and resp.json()["user"]["role"] == acc.role.value
