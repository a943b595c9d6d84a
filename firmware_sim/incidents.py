"""Ground truth: every incident and nuisance the simulator produced, as JSONL records (pure)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Real incidents use contract §2 alert kinds; nuisances (real false) use these names,
# except a cancelled press, which is kind "sos" with detail "cancelled".
REAL_KINDS = frozenset(
    {"sos", "fall", "wandering", "smoke", "device_offline", "low_battery", "inactivity", "anomaly"}
)
NUISANCE_KINDS = frozenset({"sit_hard", "drop_cane", "stumble", "cooking", "steam", "reboot"})


@dataclass(frozen=True, slots=True)
class Incident:
    """One ground-truth record.

    Attributes:
        incident_id: unique within a run (`inc-<device>-<n>`).
        kind: a contract alert kind when `real`, else a nuisance name.
        real: whether the platform should raise an alert for it.
        elder_id: the elder concerned.
        device_id: the device that shows it.
        start_ts: device clock (ms) at its onset (free-fall onset, press, fire start ...).
        lat: where it happened.
        lon: where it happened.
        detail: short `key=value` description.
    """

    incident_id: str
    kind: str
    real: bool
    elder_id: str
    device_id: str
    start_ts: int
    lat: float
    lon: float
    detail: str = ""

    def to_json(self) -> str:
        """One JSONL line (without the newline)."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Incident:
        """Build from a parsed JSON object.

        Raises:
            ValueError: when a field is missing or has the wrong type.
        """
        try:
            inc = cls(
                incident_id=str(obj["incident_id"]),
                kind=str(obj["kind"]),
                real=bool(obj["real"]),
                elder_id=str(obj["elder_id"]),
                device_id=str(obj["device_id"]),
                start_ts=int(obj["start_ts"]),
                lat=float(obj["lat"]),
                lon=float(obj["lon"]),
                detail=str(obj.get("detail", "")),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an incident record: {exc}") from exc
        return inc


def read_ground_truth(path: str | Path) -> list[Incident]:
    """Read a ground-truth JSONL file written by `eldercare sim run --ground-truth`.

    Raises:
        ValueError: on a line that is not an incident record.
    """
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(Incident.from_dict(json.loads(line)))
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from exc
    return out
