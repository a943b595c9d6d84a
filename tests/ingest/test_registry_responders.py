"""Responder fields in the registry: stored, read back, idempotent, optional."""

from __future__ import annotations

import dataclasses

from gateway import Fleet, fleet_to_dict, parse_fleet
from gateway.fleet import Window
from ingest.db import connect
from ingest.registry import import_fleet, load_elders, load_fleet


def _with_responders(fleet: Fleet) -> Fleet:
    doc = fleet_to_dict(fleet)
    elder = doc["elders"][0]
    elder.update(address="Xinjiekou 3-2-101", phone="+86 10 5555 0101", access_code="4711")
    elder["families"][0].update(
        phone="+86 139 0000 0001",
        relation="son",
        key_holder=True,
        available=[{"from": "22:00", "to": "07:00"}],
    )
    return parse_fleet(doc)


def test_responder_fields_are_stored_and_read_back(migrated_url: str, fleet: Fleet) -> None:
    rich = _with_responders(fleet)
    with connect(migrated_url) as conn:
        import_fleet(conn, rich)
        again = import_fleet(conn, rich)
        back = load_fleet(conn)
    assert again.changed == 0
    elder = next(e for e in back.elders if e.id == rich.elders[0].id)
    assert elder == rich.elders[0]
    fam = elder.families[0]
    assert fam.available == (Window(1320, 420),) and fam.callable_at(180)
    assert fam.key_holder and fam.phone == "+86 139 0000 0001"


def test_a_changed_link_field_touches_only_that_link(migrated_url: str, fleet: Fleet) -> None:
    rich = _with_responders(fleet)
    elder = rich.elders[0]
    fam = dataclasses.replace(elder.families[0], key_holder=False, available=())
    changed = dataclasses.replace(rich, elders=(dataclasses.replace(elder, families=(fam,)),))
    with connect(migrated_url) as conn:
        import_fleet(conn, rich)
        result = import_fleet(conn, changed)
        stored = load_elders(conn)[elder.id].families[0]
    assert (result.elder_families, result.elders, result.families) == (1, 0, 0)
    assert not stored.key_holder and stored.available == ()


def test_a_file_without_the_fields_clears_them_and_still_imports(
    migrated_url: str, fleet: Fleet
) -> None:
    with connect(migrated_url) as conn:
        import_fleet(conn, _with_responders(fleet))
        result = import_fleet(conn, fleet)
        back = load_elders(conn)[fleet.elders[0].id]
    assert result.elders == 1 and result.families == 1 and result.elder_families == 1
    assert back == fleet.elders[0]
    assert back.access_code is None and not back.families[0].key_holder
