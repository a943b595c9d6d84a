"""Fleet files of contract §3: validated as a whole, every error listed."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from gateway.contract import DEVICE_ID_RE, DeviceType

DEFAULT_CAPACITY = 3
DEFAULT_COVERAGE_KM2 = 1.0
DEFAULT_SAFE_RADIUS_M = 300.0
DEFAULT_HEARTBEAT_S = 300
_MAX_ID = 64


@dataclass(frozen=True, slots=True)
class CareCenter:
    """A care centre: where alerts are worked."""

    id: str
    name: str
    lat: float
    lon: float
    capacity: int = DEFAULT_CAPACITY
    coverage_km2: float = DEFAULT_COVERAGE_KM2

    @property
    def coverage_radius_m(self) -> float:
        """Radius of the circle whose area is `coverage_km2` (contract §3)."""
        return math.sqrt(self.coverage_km2 * 1e6 / math.pi)


@dataclass(frozen=True, slots=True)
class Family:
    """A family member linked to an elder."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Elder:
    """A resident the platform looks after."""

    id: str
    name: str
    home_lat: float
    home_lon: float
    safe_radius_m: float = DEFAULT_SAFE_RADIUS_M
    families: tuple[Family, ...] = ()


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device worn or installed for one elder."""

    id: str
    type: DeviceType
    elder_id: str
    heartbeat_s: int = DEFAULT_HEARTBEAT_S


@dataclass(frozen=True, slots=True)
class Fleet:
    """A whole fleet file."""

    care_centers: tuple[CareCenter, ...] = ()
    elders: tuple[Elder, ...] = ()
    devices: tuple[Device, ...] = ()


class FleetError(ValueError):
    """A fleet file that cannot be imported; `errors` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} error(s) in fleet file:\n" + "\n".join(errors))
        self.errors = errors


@dataclass
class _Reader:
    errors: list[str] = field(default_factory=list)

    def string(self, obj: dict[str, Any], key: str, where: str, *, is_id: bool = False) -> str:
        value = obj.get(key)
        if not isinstance(value, str) or not value or (is_id and len(value) > _MAX_ID):
            limit = f", at most {_MAX_ID} chars" if is_id else ""
            self.errors.append(f"{where}.{key}: required non-empty string{limit}")
            return ""
        return value

    def number(
        self, obj: dict[str, Any], key: str, where: str, lo: float, hi: float, default: float | None
    ) -> float:
        value: Any = obj.get(key, default)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not lo <= value <= hi:
            need = "required" if default is None else "optional"
            self.errors.append(f"{where}.{key}: {need} number in [{lo}, {hi}], got {value!r}")
            return lo
        return float(value)

    def integer(self, obj: dict[str, Any], key: str, where: str, lo: int, default: int) -> int:
        value = obj.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            self.errors.append(f"{where}.{key}: integer >= {lo}, got {value!r}")
            return lo
        return value

    def items(self, obj: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
        value = obj.get(key, [])
        if not isinstance(value, list):
            self.errors.append(f"{where}{key}: must be a list")
            return []
        good = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                good.append(item)
            else:
                self.errors.append(f"{where}{key}[{i}]: must be an object")
        return good

    def unique(self, ids: list[str], what: str) -> None:
        seen: set[str] = set()
        for item_id in ids:
            if item_id and item_id in seen:
                self.errors.append(f"{what} id {item_id!r} appears more than once")
            seen.add(item_id)


def _centers(r: _Reader, doc: dict[str, Any]) -> list[CareCenter]:
    out = []
    for i, c in enumerate(r.items(doc, "care_centers", "")):
        w = f"care_centers[{i}]"
        out.append(
            CareCenter(
                id=r.string(c, "id", w, is_id=True),
                name=r.string(c, "name", w),
                lat=r.number(c, "lat", w, -90, 90, None),
                lon=r.number(c, "lon", w, -180, 180, None),
                capacity=r.integer(c, "capacity", w, 0, DEFAULT_CAPACITY),
                coverage_km2=r.number(c, "coverage_km2", w, 1e-6, 1e4, DEFAULT_COVERAGE_KM2),
            )
        )
    return out


def _elders(r: _Reader, doc: dict[str, Any]) -> list[Elder]:
    out = []
    family_names: dict[str, str] = {}
    for i, e in enumerate(r.items(doc, "elders", "")):
        w = f"elders[{i}]"
        families = []
        for j, f in enumerate(r.items(e, "families", f"{w}.")):
            fw = f"{w}.families[{j}]"
            fam = Family(id=r.string(f, "id", fw, is_id=True), name=r.string(f, "name", fw))
            if family_names.setdefault(fam.id, fam.name) != fam.name:
                r.errors.append(f"{fw}: family {fam.id!r} has two different names")
            families.append(fam)
        out.append(
            Elder(
                id=r.string(e, "id", w, is_id=True),
                name=r.string(e, "name", w),
                home_lat=r.number(e, "home_lat", w, -90, 90, None),
                home_lon=r.number(e, "home_lon", w, -180, 180, None),
                safe_radius_m=r.number(e, "safe_radius_m", w, 1, 1e5, DEFAULT_SAFE_RADIUS_M),
                families=tuple(families),
            )
        )
        r.unique([f.id for f in families], f"{w}.families")
    return out


def _devices(r: _Reader, doc: dict[str, Any], elder_ids: set[str]) -> list[Device]:
    out = []
    for i, d in enumerate(r.items(doc, "devices", "")):
        w = f"devices[{i}]"
        device_id = r.string(d, "id", w)
        if device_id and not DEVICE_ID_RE.fullmatch(device_id):
            r.errors.append(f"{w}.id: {device_id!r} does not match {DEVICE_ID_RE.pattern}")
        try:
            dtype = DeviceType(str(d.get("type")))
        except ValueError:
            r.errors.append(f"{w}.type: one of button, smoke, band, cane; got {d.get('type')!r}")
            dtype = DeviceType.BUTTON
        elder_id = r.string(d, "elder_id", w)
        if elder_id and elder_id not in elder_ids:
            r.errors.append(f"{w}.elder_id: no elder {elder_id!r} in this file")
        heartbeat_s = r.integer(d, "heartbeat_s", w, 1, DEFAULT_HEARTBEAT_S)
        out.append(Device(device_id, dtype, elder_id, heartbeat_s))
    return out


def parse_fleet(data: bytes | str | dict[str, Any]) -> Fleet:
    """Validate a fleet file as a whole.

    Raises:
        FleetError: listing every error found; nothing is returned half-valid.
    """
    r = _Reader()
    if isinstance(data, bytes | str):
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise FleetError([f"not valid JSON: {exc}"]) from exc
    else:
        doc = data
    if not isinstance(doc, dict):
        raise FleetError(["the fleet file must be a JSON object"])
    centers, elders = _centers(r, doc), _elders(r, doc)
    devices = _devices(r, doc, {e.id for e in elders})
    r.unique([c.id for c in centers], "care centre")
    r.unique([e.id for e in elders], "elder")
    r.unique([d.id for d in devices], "device")
    if r.errors:
        raise FleetError(r.errors)
    return Fleet(tuple(centers), tuple(elders), tuple(devices))


def fleet_to_dict(fleet: Fleet) -> dict[str, Any]:
    """Return the contract §3 JSON object for `fleet`."""
    return {
        "care_centers": [
            {
                "id": c.id,
                "name": c.name,
                "lat": c.lat,
                "lon": c.lon,
                "capacity": c.capacity,
                "coverage_km2": c.coverage_km2,
            }
            for c in fleet.care_centers
        ],
        "elders": [
            {
                "id": e.id,
                "name": e.name,
                "home_lat": e.home_lat,
                "home_lon": e.home_lon,
                "safe_radius_m": e.safe_radius_m,
                "families": [{"id": f.id, "name": f.name} for f in e.families],
            }
            for e in fleet.elders
        ],
        "devices": [
            {"id": d.id, "type": d.type.value, "elder_id": d.elder_id, "heartbeat_s": d.heartbeat_s}
            for d in fleet.devices
        ],
    }
