"""Admin routes: dead letters with raw bytes, registry import, accounts, audit; 403 for others."""

from __future__ import annotations

import base64
from collections.abc import Callable

import psycopg
import pytest
from fastapi.testclient import TestClient

from ingest.registry import load_centers, load_elders
from tests.dashboard.conftest import PASSWORD, DashFleet, login

ClientAs = Callable[..., TestClient]

ADMIN_GETS = ["/api/v1/admin/dead-letters", "/api/v1/admin/users", "/api/v1/admin/audit"]


@pytest.mark.parametrize("role", ["dispatcher", "family"])
def test_admin_routes_refuse_other_roles(role: str, client_as: ClientAs) -> None:
    c = client_as(role)
    for path in ADMIN_GETS:
        assert c.get(path).status_code == 403, path
    assert c.get("/api/v1/admin/dead-letters/1").status_code == 403
    assert c.post("/api/v1/admin/registry", json={}).status_code == 403
    assert c.post("/api/v1/admin/users", json={}).status_code == 403


def test_dead_letters_list_and_raw_bytes(client_as: ClientAs, schema_url: str) -> None:
    raw = [b"\xff\xfe not json", b'{"v":1,"ts":"soon"}', b"x" * 10]
    with psycopg.connect(schema_url) as conn:
        for i, payload in enumerate(raw):
            conn.execute(
                "INSERT INTO dead_letters (received_at, topic, payload, reason, detail)"
                " VALUES (now(), %s, %s, %s, 'why')",
                (
                    f"eldercare/v1/devices/d{i}/telemetry",
                    payload,
                    ["bad_json", "bad_schema", "bad_json"][i],
                ),
            )
    c = client_as("admin")
    page = c.get("/api/v1/admin/dead-letters", params={"limit": 2}).json()
    assert [d["topic"][-12:] for d in page["items"]] == ["d2/telemetry", "d1/telemetry"]
    rest = c.get("/api/v1/admin/dead-letters", params={"cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    only = c.get("/api/v1/admin/dead-letters", params={"reason": "bad_schema"}).json()["items"]
    assert [d["size_bytes"] for d in only] == [len(raw[1])]
    first = rest["items"][0]["id"]
    detail = c.get(f"/api/v1/admin/dead-letters/{first}").json()
    assert base64.b64decode(detail["payload_b64"]) == raw[0]
    assert detail["text_preview"].endswith(" not json") and detail["reason"] == "bad_json"
    assert c.get("/api/v1/admin/dead-letters/999999").status_code == 404
    assert c.get("/api/v1/admin/dead-letters", params={"cursor": "x"}).status_code == 422


def test_registry_import_lists_every_error_and_applies_nothing(
    client_as: ClientAs, dash_fleet: DashFleet, schema_url: str
) -> None:
    c = client_as("admin")
    bad = {
        "care_centers": [{"id": "cc-new", "name": "N", "lat": 39.9, "lon": 116.3}],
        "elders": [{"id": "el-new", "name": "", "home_lat": 99, "home_lon": 116.3}],
        "devices": [{"id": "BAD", "type": "toaster", "elder_id": "el-new"}],
    }
    got = c.post("/api/v1/admin/registry", json=bad)
    assert got.status_code == 422
    assert len(got.json()["errors"]) == 4, got.json()
    good = {
        "elders": [
            {
                "id": "el-new",
                "name": "New",
                "home_lat": 39.92,
                "home_lon": 116.36,
                "address": "Xidan 1",
                "families": [{"id": "fa-new", "name": "K", "key_holder": True}],
            }
        ]
    }
    with psycopg.connect(schema_url) as conn:
        assert "el-new" not in load_elders(conn)
        assert "cc-new" not in load_centers(conn)
    first = c.post("/api/v1/admin/registry", json=good).json()
    assert (first["elders"], first["families"], first["elder_families"]) == (1, 1, 1)
    assert c.post("/api/v1/admin/registry", json=good).json()["changed"] == 0
    with psycopg.connect(schema_url) as conn:
        assert load_elders(conn)["el-new"].address == "Xidan 1"
        n = conn.execute("SELECT count(*) FROM audit WHERE action = 'registry.import'").fetchone()
    assert n == (2,)


def test_accounts_created_listed_and_audited(
    client_as: ClientAs, dash_fleet: DashFleet, app_client: TestClient
) -> None:
    c = client_as("admin")
    body = {
        "username": "zhang.wei",
        "password": PASSWORD,
        "role": "dispatcher",
        "center_id": dash_fleet.center_b,
        "display_name": "Zhang Wei",
    }
    got = c.post("/api/v1/admin/users", json=body)
    assert got.status_code == 201, got.text
    assert got.json()["center_id"] == dash_fleet.center_b
    assert c.post("/api/v1/admin/users", json=body).status_code == 409
    assert c.post("/api/v1/admin/users", json={**body, "username": "Bad Name"}).status_code == 422
    assert (
        c.post(
            "/api/v1/admin/users", json={**body, "username": "nocentre", "center_id": None}
        ).status_code
        == 422
    )
    assert c.post("/api/v1/admin/users", json={**body, "password": "short"}).status_code == 422
    assert c.post("/api/v1/admin/users", json={**body, "center_id": "cc-x"}).status_code == 422
    family = {**body, "username": "li.na", "role": "family", "center_id": None}
    got = c.post(
        "/api/v1/admin/users", json={**family, "elder_ids": ["el-x", dash_fleet.elders[0]]}
    )
    assert got.status_code == 422 and "el-x" in got.json()["detail"]
    got = c.post("/api/v1/admin/users", json={**family, "elder_ids": [dash_fleet.elders[0]]})
    assert got.status_code == 201 and got.json()["elder_ids"] == [dash_fleet.elders[0]]
    users = {u["username"]: u for u in c.get("/api/v1/admin/users").json()}
    assert users["zhang.wei"]["role"] == "dispatcher" and users["zhang.wei"]["disabled"] is False
    fresh = TestClient(app_client.app, base_url="https://testserver")
    fresh.portal = app_client.portal
    assert login(fresh, "zhang.wei")["user"]["center_id"] == dash_fleet.center_b
    audit = c.get("/api/v1/admin/audit", params={"action": "user.add"}).json()["items"]
    assert [(a["target"], a["detail"]) for a in audit] == [
        ("li.na", {"role": "family"}),
        ("zhang.wei", {"role": "dispatcher"}),
    ]
    mine = c.get("/api/v1/admin/audit", params={"username": "zhang.wei", "limit": 1}).json()
    assert mine["items"][0]["action"] == "login"
