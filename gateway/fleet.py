"""Fleet files of contract §3: validated as a whole, every error listed."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.contract import DEVICE_ID_RE, DeviceType

DEFAULT_CAPACITY = 3
DEFAULT_COVERAGE_KM2 = 1.0
DEFAULT_SAFE_RADIUS_M = 300.0
DEFAULT_HEARTBEAT_S = 300
_MAX_ID = 64
_MAX_TEXT = 2000  # longest optional free text (address, notes)
_HHMM_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")


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
class Window:
    """A daily availability window in local minutes of the day; `to_min < from_min` wraps."""

    from_min: int
    to_min: int

    def contains(self, minute_of_day: int) -> bool:
        """Whether `minute_of_day` (0..1439) falls in [from, to), across midnight when it wraps."""
        if self.from_min <= self.to_min:
            return self.from_min <= minute_of_day < self.to_min
        return minute_of_day >= self.from_min or minute_of_day < self.to_min


@dataclass(frozen=True, slots=True)
class Family:
    """A family member linked to an elder.

    `phone` and `email` belong to the person (the same in every elder's list); `relation`,
    `key_holder` and `available` describe the link to this elder.
    """

    id: str
    name: str
    phone: str | None = None
    email: str | None = None
    relation: str | None = None
    key_holder: bool = False
    available: tuple[Window, ...] = ()

    def callable_at(self, minute_of_day: int) -> bool:
        """Whether this person can be called at that local time (no windows: at any time)."""
        return not self.available or any(w.contains(minute_of_day) for w in self.available)


@dataclass(frozen=True, slots=True)
class Elder:
    """A resident the platform looks after."""

    id: str
    name: str
    home_lat: float
    home_lon: float
    safe_radius_m: float = DEFAULT_SAFE_RADIUS_M
    families: tuple[Family, ...] = ()
    address: str | None = None
    phone: str | None = None
    language: str | None = None
    notes: str | None = None
    access_code: str | None = None  # key-safe or door code, shown only to the responder


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

    def text(self, obj: dict[str, Any], key: str, where: str) -> str | None:
        """An optional non-empty string of at most `_MAX_TEXT` characters (None when absent)."""
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
            self.errors.append(f"{where}.{key}: optional non-empty string of <= {_MAX_TEXT} chars")
            return None
        return value

    def flag(self, obj: dict[str, Any], key: str, where: str) -> bool:
        """An optional boolean, false when absent."""
        value = obj.get(key, False)
        if not isinstance(value, bool):
            self.errors.append(f"{where}.{key}: optional boolean, got {value!r}")
            return False
        return value

    def windows(self, obj: dict[str, Any], where: str) -> tuple[Window, ...]:
        """Optional `available` windows `[{"from": "HH:MM", "to": "HH:MM"}]`."""
        out = []
        for k, item in enumerate(self.items(obj, "available", f"{where}.")):
            mins = []
            for end in ("from", "to"):
                value = item.get(end)
                match = _HHMM_RE.fullmatch(value) if isinstance(value, str) else None
                if match is None or (end == "from" and value == "24:00"):
                    self.errors.append(f"{where}.available[{k}].{end}: HH:MM, got {value!r}")
                    mins.append(-1)
                else:
                    mins.append(int(match.group(0)[:2]) * 60 + int(match.group(0)[3:]))
            if min(mins) >= 0:
                if mins[0] == mins[1] % 1440:
                    self.errors.append(f"{where}.available[{k}]: empty window")
                out.append(Window(mins[0], mins[1] % 1440))
        return tuple(out)

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


def _family(r: _Reader, f: dict[str, Any], fw: str) -> Family:
    return Family(
        id=r.string(f, "id", fw, is_id=True),
        name=r.string(f, "name", fw),
        phone=r.text(f, "phone", fw),
        email=r.text(f, "email", fw),
        relation=r.text(f, "relation", fw),
        key_holder=r.flag(f, "key_holder", fw),
        available=r.windows(f, fw),
    )


def _elders(r: _Reader, doc: dict[str, Any]) -> list[Elder]:
    out = []
    people: dict[str, tuple[str, str | None, str | None]] = {}
    for i, e in enumerate(r.items(doc, "elders", "")):
        w = f"elders[{i}]"
        families = []
        for j, f in enumerate(r.items(e, "families", f"{w}.")):
            fw = f"{w}.families[{j}]"
            fam = _family(r, f, fw)
            person = (fam.name, fam.phone, fam.email)
            if people.setdefault(fam.id, person) != person:
                r.errors.append(f"{fw}: family {fam.id!r} has two different names or contacts")
            families.append(fam)
        out.append(
            Elder(
                id=r.string(e, "id", w, is_id=True),
                name=r.string(e, "name", w),
                home_lat=r.number(e, "home_lat", w, -90, 90, None),
                home_lon=r.number(e, "home_lon", w, -180, 180, None),
                safe_radius_m=r.number(e, "safe_radius_m", w, 1, 1e5, DEFAULT_SAFE_RADIUS_M),
                families=tuple(families),
                address=r.text(e, "address", w),
                phone=r.text(e, "phone", w),
                language=r.text(e, "language", w),
                notes=r.text(e, "notes", w),
                access_code=r.text(e, "access_code", w),
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
        "elders": [_elder_dict(e) for e in fleet.elders],
        "devices": [
            {"id": d.id, "type": d.type.value, "elder_id": d.elder_id, "heartbeat_s": d.heartbeat_s}
            for d in fleet.devices
        ],
    }


def hhmm(minute_of_day: int) -> str:
    """`HH:MM` of a minute of the day (0..1439)."""
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"


def window_dicts(windows: tuple[Window, ...]) -> list[dict[str, str]]:
    """The `available` JSON list of `windows`."""
    return [{"from": hhmm(w.from_min), "to": hhmm(w.to_min)} for w in windows]


def _family_dict(f: Family) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f.id, "name": f.name}
    optional = {"phone": f.phone, "email": f.email, "relation": f.relation}
    out.update({k: v for k, v in optional.items() if v is not None})
    if f.key_holder:
        out["key_holder"] = True
    if f.available:
        out["available"] = window_dicts(f.available)
    return out


def _elder_dict(e: Elder) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": e.id,
        "name": e.name,
        "home_lat": e.home_lat,
        "home_lon": e.home_lon,
        "safe_radius_m": e.safe_radius_m,
        "families": [_family_dict(f) for f in e.families],
    }
    optional = {
        "address": e.address,
        "phone": e.phone,
        "language": e.language,
        "notes": e.notes,
        "access_code": e.access_code,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out
