"""Elder list and card per role; responder fields; the access code only for its holder."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from fastapi.testclient import TestClient

from gateway import parse_fleet
from ingest.registry import import_fleet
from tests.dashboard.conftest import DashFleet, RaiseAlert

ClientAs = Callable[..., TestClient]


@pytest.fixture
def responders(schema_url: str, dash_fleet: DashFleet) -> str:
    """Elder 0 gets an address, a key-holder with a night window and a key-safe code."""
    doc = {
        "elders": [
            {
                "id": dash_fleet.elders[0],
                "name": "Elder 0",
                "home_lat": 39.93,
                "home_lon": 116.37,
                "address": "Xinjiekou 3-2-101",
                "phone": "+86 10 5555 0101",
                "language": "zh-CN",
                "notes": "hard of hearing",
                "access_code": "4711",
                "families": [
                    {
                        "id": f"fa-{dash_fleet.suffix}",
                        "name": "Son",
                        "phone": "+86 139 0000 0001",
                        "relation": "son",
                        "key_holder": True,
                        "available": [{"from": "22:00", "to": "07:00"}],
                    }
                ],
            }
        ]
    }
    with psycopg.connect(schema_url) as conn:
        import_fleet(conn, parse_fleet(doc))
    return dash_fleet.elders[0]


def test_list_is_paged_and_searchable(client_as: ClientAs, dash_fleet: DashFleet) -> None:
    c = client_as("dispatcher")
    first = c.get("/api/v1/elders", params={"limit": 2}).json()
    assert [e["id"] for e in first["items"]] == sorted(dash_fleet.elders)[:2]
    rest = c.get("/api/v1/elders", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [e["id"] for e in rest["items"]] == sorted(dash_fleet.elders)[2:]
    assert rest["next_cursor"] is None
    found = c.get("/api/v1/elders", params={"q": "elder 1"}).json()["items"]
    assert [e["id"] for e in found] == [dash_fleet.elders[1]]
    assert found[0]["devices"] == 4


def test_family_sees_only_linked_elders(client_as: ClientAs, dash_fleet: DashFleet) -> None:
    fam = client_as("family", elder_ids=(dash_fleet.elders[1],))
    items = fam.get("/api/v1/elders").json()["items"]
    assert [e["id"] for e in items] == [dash_fleet.elders[1]]
    assert fam.get(f"/api/v1/elders/{dash_fleet.elders[1]}").status_code == 200
    assert fam.get(f"/api/v1/elders/{dash_fleet.elders[0]}").status_code == 404


@pytest.mark.parametrize("role", ["admin", "dispatcher", "family"])
def test_unknown_elder_is_404_and_anonymous_is_401(
    role: str, client_as: ClientAs, app_client: TestClient
) -> None:
    assert client_as(role).get("/api/v1/elders/el-nobody").status_code == 404
    assert app_client.get("/api/v1/elders").status_code == 401
    assert app_client.get("/api/v1/elders/el-nobody").status_code == 401


def test_card_carries_responder_fields(client_as: ClientAs, responders: str) -> None:
    card = client_as("dispatcher").get(f"/api/v1/elders/{responders}").json()
    assert card["address"] == "Xinjiekou 3-2-101" and card["notes"] == "hard of hearing"
    (fam,) = card["families"]
    assert fam["key_holder"] and fam["relation"] == "son"
    assert fam["available"] == [{"from": "22:00", "to": "07:00"}]
    assert {d["type"] for d in card["devices"]} == {"button", "band", "cane", "smoke"}


def test_access_code_only_for_admin_and_the_holder_of_a_taken_alert(
    client_as: ClientAs, responders: str, raise_alert: RaiseAlert, schema_url: str
) -> None:
    holder = client_as("dispatcher", username="holder")
    other = client_as("dispatcher", username="other")
    family = client_as("family", elder_ids=(responders,))
    url = f"/api/v1/elders/{responders}"
    assert client_as("admin").get(url).json()["access_code"] == "4711"
    assert holder.get(url).json()["access_code"] is None
    alert = raise_alert(responders)
    with psycopg.connect(schema_url) as conn:
        conn.execute(
            "UPDATE alerts SET status = 'acknowledged', taken_by = 'holder' WHERE alert_id = %s",
            (alert.alert_id,),
        )
    assert holder.get(url).json()["access_code"] == "4711"
    assert other.get(url).json()["access_code"] is None
    assert family.get(url).json()["access_code"] is None
    with psycopg.connect(schema_url) as conn:
        conn.execute("UPDATE alerts SET status = 'resolved' WHERE alert_id = %s", (alert.alert_id,))
        seen = conn.execute(
            "SELECT username FROM audit WHERE action = 'access_code.view' AND target = %s"
            " ORDER BY id",
            (responders,),
        ).fetchall()
    assert holder.get(url).json()["access_code"] is None
    assert [name for (name,) in seen][1:] == ["holder"]  # the admin's view, then the holder's
