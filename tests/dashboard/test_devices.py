"""Device views: online state from heartbeats and Last Will, battery, last position."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from fastapi.testclient import TestClient

from tests.dashboard.conftest import DashFleet
from tests.dashboard.telemetry_rows import add_band

ClientAs = Callable[..., TestClient]


def _seen(
    conn: psycopg.Connection[tuple[object, ...]], device_id: str, ago_s: int, online: bool | None
) -> None:
    conn.execute(
        "INSERT INTO device_last_seen (device_id, last_seen_at, online, battery_pct)"
        " VALUES (%s, now() - make_interval(secs => %s), %s, 42)",
        (device_id, ago_s, online),
    )


def test_online_state_battery_and_last_position(
    client_as: ClientAs, dash_fleet: DashFleet, schema_url: str
) -> None:
    e0 = dash_fleet.elders[0]
    band, btn, cane = (dash_fleet.device(e0, k) for k in ("band", "btn", "cane"))
    now_ms = int(time.time() * 1000)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        _seen(conn, band, 10, None)  # heard 10 s ago: online
        _seen(conn, btn, 751, True)  # silent > 2.5 x 300 s: offline (contract §1)
        _seen(conn, cane, 5, False)  # Last Will received: offline
        add_band(
            conn,
            band,
            [(now_ms - 60_000, 39.93, 116.37, 70, 5), (now_ms - 1_000, 39.931, 116.371, 72, 3)],
        )
    c = client_as("dispatcher")
    got = c.get(f"/api/v1/devices/{band}").json()
    assert got["online"] is True and got["battery_pct"] == 42
    assert (got["lat"], got["lon"], got["position_ts"]) == (39.931, 116.371, now_ms - 1_000)
    assert abs(got["last_seen_ts"] - (now_ms - 10_000)) < 5_000
    assert c.get(f"/api/v1/devices/{btn}").json()["online"] is False
    assert c.get(f"/api/v1/devices/{cane}").json()["online"] is False
    never = c.get(f"/api/v1/devices/{dash_fleet.device(e0, 'smoke')}").json()
    assert never["online"] is False and never["last_seen_ts"] is None and never["lat"] is None


def test_device_visibility_per_role(
    client_as: ClientAs, dash_fleet: DashFleet, app_client: TestClient
) -> None:
    mine = dash_fleet.device(dash_fleet.elders[0], "band")
    theirs = dash_fleet.device(dash_fleet.elders[1], "band")
    family = client_as("family")
    assert family.get(f"/api/v1/devices/{mine}").status_code == 200
    assert family.get(f"/api/v1/devices/{theirs}").status_code == 404
    assert family.get(f"/api/v1/devices/{theirs}/telemetry").status_code == 404
    assert client_as("dispatcher").get(f"/api/v1/devices/{theirs}").status_code == 200
    assert client_as("admin").get("/api/v1/devices/no-such-device").status_code == 404
    assert app_client.get(f"/api/v1/devices/{mine}").status_code == 401
