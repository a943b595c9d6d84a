"""Fleet files (contract §3) and alert messages (contract §2)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway import (
    AlertKind,
    AlertMessage,
    AlertStatus,
    FleetError,
    PayloadError,
    Severity,
    decode_alert,
    encode_alert,
    fleet_to_dict,
    parse_fleet,
)

FLEET: dict[str, Any] = {
    "care_centers": [
        {
            "id": "cc-001",
            "name": "Centre",
            "lat": 39.93,
            "lon": 116.37,
            "capacity": 3,
            "coverage_km2": 1.0,
        }
    ],
    "elders": [
        {
            "id": "el-000001",
            "name": "Wang",
            "home_lat": 39.931,
            "home_lon": 116.372,
            "safe_radius_m": 300,
            "families": [{"id": "fa-000001", "name": "Li"}],
        }
    ],
    "devices": [
        {"id": "btn-000001", "type": "button", "elder_id": "el-000001", "heartbeat_s": 300}
    ],
}


def test_a_valid_fleet_parses_and_round_trips() -> None:
    fleet = parse_fleet(json.dumps(FLEET))
    assert fleet.care_centers[0].coverage_radius_m == pytest.approx(564.19, abs=0.01)
    assert parse_fleet(fleet_to_dict(fleet)) == fleet


def test_defaults_apply() -> None:
    doc = copy.deepcopy(FLEET)
    del doc["care_centers"][0]["capacity"], doc["care_centers"][0]["coverage_km2"]
    del doc["elders"][0]["safe_radius_m"]
    fleet = parse_fleet(doc)
    assert (fleet.care_centers[0].capacity, fleet.care_centers[0].coverage_km2) == (3, 1.0)
    assert fleet.elders[0].safe_radius_m == 300


def test_every_error_is_listed() -> None:
    doc = copy.deepcopy(FLEET)
    doc["care_centers"][0]["lat"] = "north"
    doc["devices"].append({"id": "BAD ID", "type": "toaster", "elder_id": "el-404"})
    doc["devices"].append(dict(doc["devices"][0]))
    with pytest.raises(FleetError) as info:
        parse_fleet(doc)
    text = "\n".join(info.value.errors)
    assert len(info.value.errors) == 5, text
    for needle in (
        "care_centers[0].lat",
        "devices[1].id",
        "devices[1].type",
        "devices[1].elder_id",
        "'btn-000001' appears more than once",
    ):
        assert needle in text


def test_not_json_is_refused() -> None:
    with pytest.raises(FleetError):
        parse_fleet(b"{")


ALERT = AlertMessage(
    alert_id="a-1",
    kind=AlertKind.FALL,
    severity=Severity.CRITICAL,
    status=AlertStatus.OPEN,
    elder_id="el-000001",
    device_id="cane-000001",
    center_id="cc-001",
    distance_m=412.5,
    in_coverage=True,
    lat=39.91,
    lon=116.36,
    event_ts=1764340000123,
    raised_ts=1764340000180,
    updated_ts=1764340000180,
    reason="free fall 0.3 g, impact 4.1 g, still 20 s",
)


def test_alert_round_trip_matches_the_contract_example() -> None:
    raw = encode_alert(ALERT)
    body = json.loads(raw)
    assert body["v"] == 1 and body["kind"] == "fall" and body["status"] == "open"
    assert set(body) == {
        "v",
        "alert_id",
        "kind",
        "severity",
        "status",
        "elder_id",
        "device_id",
        "center_id",
        "distance_m",
        "in_coverage",
        "lat",
        "lon",
        "event_ts",
        "raised_ts",
        "updated_ts",
        "reason",
    }
    assert decode_alert(raw) == ALERT


@pytest.mark.parametrize(
    "change",
    [{"kind": "meteor"}, {"in_coverage": "yes"}, {"event_ts": 1.5}, {"v": 2}],
    ids=["kind", "coverage-type", "ts-type", "version"],
)
def test_bad_alerts_are_rejected(change: dict[str, Any]) -> None:
    body = {**json.loads(encode_alert(ALERT)), **change}
    with pytest.raises(PayloadError):
        decode_alert(json.dumps(body).encode())
