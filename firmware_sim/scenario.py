"""Scenario injection and fault rates: parsed from the command line or a JSON file (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from gateway import DeviceType, Fleet

# Which device shows each injectable incident, in order of preference.
INJECTION_DEVICES: dict[str, tuple[DeviceType, ...]] = {
    "fall": (DeviceType.CANE,),
    "fall_recovery": (DeviceType.CANE,),
    "sit_hard": (DeviceType.CANE,),
    "drop_cane": (DeviceType.CANE,),
    "stumble": (DeviceType.CANE,),
    "sos": (DeviceType.BUTTON, DeviceType.BAND, DeviceType.CANE),
    "long_press": (DeviceType.BUTTON,),
    "cancel": (DeviceType.BUTTON,),
    "wander": (DeviceType.BAND,),
    "smoke": (DeviceType.SMOKE,),
    "cooking": (DeviceType.SMOKE,),
    "steam": (DeviceType.SMOKE,),
    "offline": (DeviceType.BAND, DeviceType.CANE, DeviceType.BUTTON, DeviceType.SMOKE),
    "silent": (DeviceType.BAND, DeviceType.CANE, DeviceType.BUTTON, DeviceType.SMOKE),
    "low_battery": (DeviceType.BAND, DeviceType.CANE, DeviceType.BUTTON, DeviceType.SMOKE),
    "reboot": (DeviceType.BAND, DeviceType.CANE, DeviceType.BUTTON, DeviceType.SMOKE),
    # Conditions (firmware_sim.conditions): params `hours` and `rhythm` (af_rvr, heart_block).
    "inactivity": (DeviceType.BAND, DeviceType.CANE),
    "anomaly": (DeviceType.BAND,),
}
_SPEC_RE = re.compile(
    r"^(?P<target>[a-z0-9][a-z0-9-]{2,63})(?:@\+?(?P<at>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?)?$"
)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Injection:
    """One incident to inject.

    Attributes:
        kind: one of INJECTION_DEVICES.
        target: an elder id or a device id.
        at_s: simulated seconds after the start of the run.
        params: extra settings (e.g. wander `pattern`, `distance_m`).
    """

    kind: str
    target: str
    at_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Per-message probabilities of deliberate contract faults (telemetry and events only)."""

    malformed: float = 0.0
    duplicate: float = 0.0
    late: float = 0.0

    @property
    def any(self) -> bool:
        """Whether any fault is enabled."""
        return self.malformed > 0 or self.duplicate > 0 or self.late > 0


def parse_spec(kind: str, spec: str) -> Injection:
    """Parse `TARGET@+120s` (also `@+2m`, `@+1h`, `@+500ms`, or no time: at the start).

    Raises:
        ValueError: when it does not parse or the kind is unknown.
    """
    if kind not in INJECTION_DEVICES:
        raise ValueError(f"unknown injection {kind!r}; one of {', '.join(INJECTION_DEVICES)}")
    m = _SPEC_RE.match(spec.strip())
    if not m:
        raise ValueError(f"bad --{kind} {spec!r}: expected ID@+SECONDSs, e.g. el-000123@+120s")
    at_s = float(m["at"] or 0) * _UNIT_S[m["unit"] or "s"]
    return Injection(kind, m["target"], at_s)


def parse_faults(text: str) -> FaultRates:
    """Parse `0.01` (every fault at that rate) or `malformed=0.01,duplicate=0.02,late=0.005`.

    Raises:
        ValueError: on a bad name or a rate outside 0..1.
    """
    rates: dict[str, float] = {}
    if "=" not in text:
        rates = dict.fromkeys(("malformed", "duplicate", "late"), float(text))
    else:
        for part in text.split(","):
            name, _, value = part.partition("=")
            if name.strip() not in ("malformed", "duplicate", "late"):
                raise ValueError(f"unknown fault {name!r}: malformed, duplicate or late")
            rates[name.strip()] = float(value)
    if any(not 0.0 <= r <= 1.0 for r in rates.values()):
        raise ValueError("fault rates must lie in 0..1")
    return FaultRates(**rates)


def parse_scenario(text: str) -> tuple[list[Injection], FaultRates | None]:
    """Parse a scenario JSON file.

    Format: `{"injections": [{"kind": "fall", "target": "el-000123", "at_s": 120,
    ...extra params}], "faults": {"malformed": 0.01, "duplicate": 0.01, "late": 0.0}}`.

    Raises:
        ValueError: listing what is wrong.
    """
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"scenario is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("scenario must be a JSON object")
    out = []
    for i, item in enumerate(doc.get("injections", [])):
        if not isinstance(item, dict) or "kind" not in item or "target" not in item:
            raise ValueError(f"injections[{i}]: needs kind and target")
        base = parse_spec(str(item["kind"]), str(item["target"]))
        extra = {k: v for k, v in item.items() if k not in ("kind", "target", "at_s")}
        out.append(Injection(base.kind, base.target, float(item.get("at_s", 0)), extra))
    faults = doc.get("faults")
    if faults is None:
        return out, None
    if not isinstance(faults, dict):
        raise ValueError("faults must be an object")
    return out, parse_faults(",".join(f"{k}={v}" for k, v in faults.items()))


def resolve_device(fleet: Fleet, injection: Injection) -> str:
    """The device id that will show `injection`.

    Raises:
        ValueError: when the target is unknown or has no suitable device.
    """
    wanted = INJECTION_DEVICES[injection.kind]
    for device in fleet.devices:
        if device.id == injection.target:
            if device.type not in wanted:
                raise ValueError(
                    f"{injection.kind} needs a {'/'.join(wanted)} device, not {device.id}"
                )
            return device.id
    mine = {d.type: d.id for d in reversed(fleet.devices) if d.elder_id == injection.target}
    if not mine and all(e.id != injection.target for e in fleet.elders):
        raise ValueError(f"{injection.target!r} is neither an elder nor a device of the fleet")
    for dtype in wanted:
        if dtype in mine:
            return mine[dtype]
    raise ValueError(f"{injection.target} has no {'/'.join(wanted)} device for {injection.kind}")
