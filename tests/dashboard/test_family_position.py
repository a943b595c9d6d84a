"""A family account sees an elder's position only while an alert of that elder is active, on
every device and elder route (as on the family page); dispatchers and admins always see it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from tests.dashboard.conftest import DashFleet, RaiseAlert
from tests.dashboard.telemetry_rows import add_band

ClientAs = Callable[..., TestClient]
MIN = 60_000
FIX = (39.9311, 116.3712)


def _positions(client: TestClient, elder: str, band: str, since_ms: int) -> dict[str, Any]:
    """What `client` learns of the band's position from each route."""
    device = client.get(f"/api/v1/devices/{band}")
    card = client.get(f"/api/v1/elders/{elder}")
    series = client.get(
        f"/api/v1/devices/{band}/telemetry",
        params={"since_ts": since_ms, "until_ts": since_ms + 5 * MIN, "bucket_s": 60},
    )
    for resp in (device, card, series):
        assert resp.status_code == 200, resp.text
    (in_card,) = [d for d in card.json()["devices"] if d["id"] == band]
    points = series.json()["points"]
    assert points, "the band's fixes are in the range"
    return {
        "device": (device.json()["lat"], device.json()["lon"], device.json()["position_ts"]),
        "card": (in_card["lat"], in_card["lon"], in_card["position_ts"]),
        "series": {(p["lat"], p["lon"]) for p in points},
    }


def _shown(seen: dict[str, Any], fix_ts: int) -> bool:
    return bool(
        seen["device"] == (*FIX, fix_ts)
        and seen["card"] == (*FIX, fix_ts)
        and all(lat is not None and lon is not None for lat, lon in seen["series"])
    )


def _hidden(seen: dict[str, Any]) -> bool:
    return bool(
        seen["device"] == (None, None, None)
        and seen["card"] == (None, None, None)
        and seen["series"] == {(None, None)}
    )


def test_family_sees_the_position_only_while_an_alert_is_active(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet, schema_url: str
) -> None:
    elder, other = dash_fleet.elders[0], dash_fleet.elders[1]
    band = dash_fleet.device(elder, "band")
    since = (int(time.time() * 1000) // MIN - 10) * MIN
    fix_ts = since + 30_000
    with psycopg.connect(schema_url, autocommit=True) as conn:
        add_band(conn, band, [(fix_ts, *FIX, 70, 5)])
    family = client_as("family", elder_ids=(elder,))
    dispatcher = client_as("dispatcher")
    admin = client_as("admin")

    assert _hidden(_positions(family, elder, band, since))
    assert _shown(_positions(dispatcher, elder, band, since), fix_ts)
    assert _shown(_positions(admin, elder, band, since), fix_ts)

    # Another elder's alert reveals nothing of this one.
    raise_alert(other)
    assert _hidden(_positions(family, elder, band, since))

    alert = raise_alert(elder)
    assert _shown(_positions(family, elder, band, since), fix_ts)
    assert dispatcher.post(f"/api/v1/alerts/{alert.alert_id}/ack").status_code == 200
    assert _shown(_positions(family, elder, band, since), fix_ts)  # acknowledged: still active
    resolved = dispatcher.post(
        f"/api/v1/alerts/{alert.alert_id}/resolve", json={"outcome": "false_alarm"}
    )
    assert resolved.status_code == 200
    assert _hidden(_positions(family, elder, band, since))
    assert _shown(_positions(dispatcher, elder, band, since), fix_ts)


def test_alert_window_positions_follow_the_same_rule(
    client_as: ClientAs, raise_alert: RaiseAlert, dash_fleet: DashFleet, schema_url: str
) -> None:
    elder = dash_fleet.elders[0]
    band = dash_fleet.device(elder, "band")
    now = int(time.time() * 1000)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        add_band(conn, band, [(now - 60_000, *FIX, 70, 5), (now - 30_000, *FIX, 71, 5)])
    family = client_as("family", elder_ids=(elder,))
    dispatcher = client_as("dispatcher")
    alert = raise_alert(elder, "wandering", severity="high", now_ms=now)

    def track(client: TestClient) -> set[tuple[Any, Any]]:
        resp = client.get(f"/api/v1/alerts/{alert.alert_id}/telemetry")
        assert resp.status_code == 200, resp.text
        points = resp.json()["track"]
        assert len(points) == 2
        return {(p["lat"], p["lon"]) for p in points}

    assert track(family) == {FIX}  # while the alert is active
    assert dispatcher.post(f"/api/v1/alerts/{alert.alert_id}/ack").status_code == 200
    resolved = dispatcher.post(
        f"/api/v1/alerts/{alert.alert_id}/resolve", json={"outcome": "false_alarm"}
    )
    assert resolved.status_code == 200
    assert track(family) == {(None, None)}
    assert track(dispatcher) == {FIX}
