"""Registry of contract §3 in the database: fleet import (one transaction) and loaders."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from gateway import CareCenter, Device, DeviceType, Elder, Family, Fleet
from gateway.fleet import Window, window_dicts

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]

# Each upsert changes a row only when a value differs, so a re-import touches nothing
# (`updated_at` stays put and xmin does not move).
_CENTERS = (
    "INSERT INTO care_centers AS t (id, name, lat, lon, capacity, coverage_km2)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::float8[], %s::int[],"
    " %s::float8[])"
    " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, lat = EXCLUDED.lat, lon = EXCLUDED.lon,"
    " capacity = EXCLUDED.capacity, coverage_km2 = EXCLUDED.coverage_km2, updated_at = now()"
    " WHERE (t.name, t.lat, t.lon, t.capacity, t.coverage_km2) IS DISTINCT FROM"
    " (EXCLUDED.name, EXCLUDED.lat, EXCLUDED.lon, EXCLUDED.capacity, EXCLUDED.coverage_km2)"
)
_ELDER_COLS = (
    "name, home_lat, home_lon, safe_radius_m, address, phone, language, notes, access_code"
)
_ELDERS = (
    f"INSERT INTO elders AS t (id, {_ELDER_COLS})"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::float8[], %s::float8[],"
    " %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])"
    " ON CONFLICT (id) DO UPDATE SET (" + _ELDER_COLS + ", updated_at) ="
    " (EXCLUDED.name, EXCLUDED.home_lat, EXCLUDED.home_lon, EXCLUDED.safe_radius_m,"
    " EXCLUDED.address, EXCLUDED.phone, EXCLUDED.language, EXCLUDED.notes, EXCLUDED.access_code,"
    " now())"
    " WHERE (" + ", ".join(f"t.{c}" for c in _ELDER_COLS.split(", ")) + ") IS DISTINCT FROM"
    " (" + ", ".join(f"EXCLUDED.{c}" for c in _ELDER_COLS.split(", ")) + ")"
)
_FAMILIES = (
    "INSERT INTO families AS t (id, name, phone, email)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])"
    " ON CONFLICT (id) DO UPDATE SET (name, phone, email) ="
    " (EXCLUDED.name, EXCLUDED.phone, EXCLUDED.email)"
    " WHERE (t.name, t.phone, t.email) IS DISTINCT FROM"
    " (EXCLUDED.name, EXCLUDED.phone, EXCLUDED.email)"
)
_LINKS_DELETE = (
    "DELETE FROM elder_families AS l WHERE l.elder_id = ANY(%s::text[]) AND NOT EXISTS"
    " (SELECT 1 FROM unnest(%s::text[], %s::text[]) AS u (e, f) WHERE u.e = l.elder_id"
    " AND u.f = l.family_id)"
)
_LINKS_INSERT = (
    "INSERT INTO elder_families AS t (elder_id, family_id, relation, key_holder, available)"
    " SELECT e, f, r, k, a::jsonb"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::bool[], %s::text[]) AS u (e, f, r, k, a)"
    " ON CONFLICT (elder_id, family_id) DO UPDATE SET (relation, key_holder, available) ="
    " (EXCLUDED.relation, EXCLUDED.key_holder, EXCLUDED.available)"
    " WHERE (t.relation, t.key_holder, t.available) IS DISTINCT FROM"
    " (EXCLUDED.relation, EXCLUDED.key_holder, EXCLUDED.available)"
)
_DEVICES = (
    "INSERT INTO devices AS t (id, type, elder_id, heartbeat_s)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[])"
    " ON CONFLICT (id) DO UPDATE SET type = EXCLUDED.type, elder_id = EXCLUDED.elder_id,"
    " heartbeat_s = EXCLUDED.heartbeat_s, updated_at = now()"
    " WHERE (t.type, t.elder_id, t.heartbeat_s) IS DISTINCT FROM"
    " (EXCLUDED.type, EXCLUDED.elder_id, EXCLUDED.heartbeat_s)"
)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Rows inserted or changed by one import, per table (all zero for a re-import)."""

    care_centers: int
    elders: int
    families: int
    elder_families: int
    devices: int

    @property
    def changed(self) -> int:
        """Total rows inserted, updated or deleted."""
        return self.care_centers + self.elders + self.families + self.elder_families + self.devices


def import_fleet(conn: Conn, fleet: Fleet) -> ImportResult:
    """Upsert a validated fleet (see `gateway.parse_fleet`) in one transaction.

    Entities missing from the file are kept (a file may cover part of the fleet); an elder's
    family links become exactly those of the file.

    Raises:
        psycopg.Error: nothing is applied then.
    """
    c, e = fleet.care_centers, fleet.elders
    families = {f.id: f for elder in e for f in elder.families}
    links = [(elder.id, f) for elder in e for f in elder.families]
    with conn.transaction():
        n_centers = conn.execute(
            _CENTERS,
            (
                [x.id for x in c],
                [x.name for x in c],
                [x.lat for x in c],
                [x.lon for x in c],
                [x.capacity for x in c],
                [x.coverage_km2 for x in c],
            ),
        ).rowcount
        n_elders = conn.execute(
            _ELDERS,
            (
                [x.id for x in e],
                [x.name for x in e],
                [x.home_lat for x in e],
                [x.home_lon for x in e],
                [x.safe_radius_m for x in e],
                [x.address for x in e],
                [x.phone for x in e],
                [x.language for x in e],
                [x.notes for x in e],
                [x.access_code for x in e],
            ),
        ).rowcount
        fams = list(families.values())
        n_families = conn.execute(
            _FAMILIES,
            (
                [f.id for f in fams],
                [f.name for f in fams],
                [f.phone for f in fams],
                [f.email for f in fams],
            ),
        ).rowcount
        link_e, link_f = [a for a, _ in links], [b.id for _, b in links]
        n_links = conn.execute(_LINKS_DELETE, ([x.id for x in e], link_e, link_f)).rowcount
        n_links += conn.execute(
            _LINKS_INSERT,
            (
                link_e,
                link_f,
                [f.relation for _, f in links],
                [f.key_holder for _, f in links],
                [json.dumps(window_dicts(f.available)) for _, f in links],
            ),
        ).rowcount
        d = fleet.devices
        n_devices = conn.execute(
            _DEVICES,
            (
                [x.id for x in d],
                [x.type.value for x in d],
                [x.elder_id for x in d],
                [x.heartbeat_s for x in d],
            ),
        ).rowcount
    result = ImportResult(n_centers, n_elders, n_families, n_links, n_devices)
    logger.info("fleet import changed %d row(s)", result.changed)
    return result


def load_registry(conn: Conn) -> dict[str, DeviceType]:
    """Device id -> registered type, for `gateway.decode(registry=...)`."""
    rows = conn.execute("SELECT id, type FROM devices").fetchall()
    return {str(device_id): DeviceType(dtype) for device_id, dtype in rows}


def load_devices(conn: Conn) -> dict[str, Device]:
    """Device id -> registered device (type, elder, heartbeat)."""
    rows = conn.execute("SELECT id, type, elder_id, heartbeat_s FROM devices").fetchall()
    return {str(i): Device(str(i), DeviceType(t), str(el), int(hb)) for i, t, el, hb in rows}


def family_from_row(row: tuple[Any, ...]) -> Family:
    """A linked family member from `(id, name, phone, email, relation, key_holder, available)`."""
    fam_id, name, phone, email, relation, key_holder, available = row
    return Family(
        str(fam_id),
        str(name),
        phone,
        email,
        relation,
        bool(key_holder),
        tuple(Window(_minutes(w["from"]), _minutes(w["to"]) % 1440) for w in (available or [])),
    )


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:5])


FAMILY_COLUMNS = "f.id, f.name, f.phone, f.email, l.relation, l.key_holder, l.available"
ELDER_COLUMNS = (
    "id, name, home_lat, home_lon, safe_radius_m, address, phone, language, notes, access_code"
)


def elder_from_row(row: tuple[Any, ...], families: tuple[Family, ...]) -> Elder:
    """An elder from a row of `ELDER_COLUMNS`."""
    i, n, la, lo, r, address, phone, language, notes, access_code = row
    return Elder(
        str(i),
        str(n),
        float(la),
        float(lo),
        float(r),
        families,
        address,
        phone,
        language,
        notes,
        access_code,
    )


def load_elders(conn: Conn) -> dict[str, Elder]:
    """Elder id -> elder, with the linked families and responder fields."""
    links: dict[str, list[Family]] = {}
    for row in conn.execute(
        f"SELECT l.elder_id, {FAMILY_COLUMNS} FROM elder_families AS l"
        " JOIN families AS f ON f.id = l.family_id ORDER BY l.elder_id, f.id"
    ).fetchall():
        links.setdefault(str(row[0]), []).append(family_from_row(row[1:]))
    rows = conn.execute(f"SELECT {ELDER_COLUMNS} FROM elders ORDER BY id").fetchall()
    return {str(row[0]): elder_from_row(row, tuple(links.get(str(row[0]), ()))) for row in rows}


def load_centers_on_duty(conn: Conn) -> list[tuple[CareCenter, bool]]:
    """Every care centre in id order, with its `on_duty` flag."""
    rows = conn.execute(
        "SELECT id, name, lat, lon, capacity, coverage_km2, on_duty FROM care_centers ORDER BY id"
    ).fetchall()
    return [
        (CareCenter(str(i), str(n), float(la), float(lo), int(cap), float(cov)), bool(duty))
        for i, n, la, lo, cap, cov, duty in rows
    ]


def load_centers(conn: Conn) -> dict[str, CareCenter]:
    """Care-centre id -> centre."""
    return {center.id: center for center, _ in load_centers_on_duty(conn)}


def registry_version(conn: Conn) -> int | None:
    """The registry's change counter (migration 043), or None before that migration.

    It moves with every statement that changes what `load_fleet` reads (not with duty switches).
    """
    if conn.execute("SELECT to_regclass('registry_version')").fetchone() == (None,):
        return None
    row = conn.execute("SELECT version FROM registry_version").fetchone()
    return int(row[0]) if row else None


def load_fleet(conn: Conn) -> Fleet:
    """The whole registry as a `Fleet` (same shape as a fleet file)."""
    return Fleet(
        tuple(load_centers(conn).values()),
        tuple(load_elders(conn).values()),
        tuple(sorted(load_devices(conn).values(), key=lambda d: d.id)),
    )
