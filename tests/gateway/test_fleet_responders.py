"""Optional responder fields of fleet files (contract §3): parsed, validated, round-tripped."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway import FleetError, fleet_to_dict, parse_fleet
from gateway.fleet import Window

BASE: dict[str, Any] = {
    "care_centers": [{"id": "cc-001", "name": "Centre", "lat": 39.93, "lon": 116.37}],
    "elders": [
        {
            "id": "el-000001",
            "name": "Wang",
            "home_lat": 39.931,
            "home_lon": 116.372,
            "families": [{"id": "fa-000001", "name": "Li"}],
        }
    ],
    "devices": [{"id": "btn-000001", "type": "button", "elder_id": "el-000001"}],
}


def _full() -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    elder = doc["elders"][0]
    elder.update(
        address="Xicheng, Xinjiekou 3-2-101",
        phone="+86 10 5555 0101",
        language="zh-CN",
        notes="Hard of hearing; insulin in the fridge",
        access_code="4711",
    )
    elder["families"][0].update(
        phone="+86 139 0000 0001",
        email="li@example.org",
        relation="daughter",
        key_holder=True,
        available=[{"from": "08:00", "to": "20:00"}, {"from": "22:00", "to": "06:00"}],
    )
    return doc


def test_a_file_without_responder_fields_keeps_its_shape() -> None:
    fleet = parse_fleet(BASE)
    elder, fam = fleet.elders[0], fleet.elders[0].families[0]
    assert (elder.address, elder.phone, elder.access_code) == (None, None, None)
    assert (fam.key_holder, fam.available, fam.relation) == (False, (), None)
    assert fleet_to_dict(fleet)["elders"][0]["families"] == [{"id": "fa-000001", "name": "Li"}]
    assert "address" not in fleet_to_dict(fleet)["elders"][0]


def test_responder_fields_parse_and_round_trip() -> None:
    fleet = parse_fleet(_full())
    elder, fam = fleet.elders[0], fleet.elders[0].families[0]
    assert elder.address == "Xicheng, Xinjiekou 3-2-101" and elder.access_code == "4711"
    assert fam.key_holder and fam.relation == "daughter" and fam.email == "li@example.org"
    assert fam.available == (Window(480, 1200), Window(1320, 360))
    assert parse_fleet(fleet_to_dict(fleet)) == fleet
    assert fleet_to_dict(fleet)["elders"][0]["families"][0]["available"][1] == {
        "from": "22:00",
        "to": "06:00",
    }


@pytest.mark.parametrize(
    ("minute", "expected"),
    [
        (479, False),
        (480, True),
        (1199, True),
        (1200, False),
        (1320, True),
        (180, True),
        (360, False),
    ],
    ids=["07:59", "08:00", "19:59", "20:00", "22:00", "03:00", "06:00"],
)
def test_who_can_be_called_at_a_given_time(minute: int, expected: bool) -> None:
    fam = parse_fleet(_full()).elders[0].families[0]
    assert fam.callable_at(minute) is expected


def test_no_windows_means_callable_at_any_time() -> None:
    fam = parse_fleet(BASE).elders[0].families[0]
    assert all(fam.callable_at(m) for m in range(0, 1440, 7))


def test_window_to_midnight_is_accepted() -> None:
    doc = _full()
    doc["elders"][0]["families"][0]["available"] = [{"from": "20:00", "to": "24:00"}]
    fam = parse_fleet(doc).elders[0].families[0]
    assert fam.callable_at(1439) and not fam.callable_at(0)


def test_every_bad_responder_field_is_listed() -> None:
    doc = _full()
    elder = doc["elders"][0]
    elder["phone"] = 12345
    elder["address"] = ""
    fam = elder["families"][0]
    fam["key_holder"] = "yes"
    fam["available"] = [{"from": "25:00", "to": "08:00"}, {"from": "08:00", "to": "08:00"}, "x"]
    with pytest.raises(FleetError) as info:
        parse_fleet(doc)
    text = "\n".join(info.value.errors)
    for needle in (
        "elders[0].phone",
        "elders[0].address",
        "families[0].key_holder",
        "available[0].from",
        "available[1]: empty window",
        "available[2]: must be an object",
    ):
        assert needle in text, text
    assert len(info.value.errors) == 6, text


def test_one_person_has_one_set_of_contacts() -> None:
    doc = _full()
    second = copy.deepcopy(doc["elders"][0])
    second["id"] = "el-000002"
    second["families"][0]["phone"] = "+86 139 9999 9999"
    doc["elders"].append(second)
    with pytest.raises(FleetError, match="two different names or contacts"):
        parse_fleet(doc)
    second["families"][0]["phone"] = doc["elders"][0]["families"][0]["phone"]
    second["families"][0]["relation"] = "neighbour"
    second["families"][0]["key_holder"] = False
    fleet = parse_fleet(doc)  # the link fields may differ between elders
    assert [e.families[0].relation for e in fleet.elders] == ["daughter", "neighbour"]
