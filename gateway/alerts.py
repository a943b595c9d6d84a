"""Alert messages of contract §2, published on eldercare/v1/alerts/{center_id}."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from gateway.codec import parse_json_object
from gateway.contract import CONTRACT_VERSION, AlertKind, AlertStatus, ReasonCode, Severity
from gateway.errors import PayloadError


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertMessage:
    """One alert, or one change of its state, as published on MQTT."""

    alert_id: str
    kind: AlertKind
    severity: Severity
    status: AlertStatus
    elder_id: str
    device_id: str
    center_id: str
    distance_m: float
    in_coverage: bool
    lat: float
    lon: float
    event_ts: int
    raised_ts: int
    updated_ts: int
    reason: str


_STR = ("alert_id", "elder_id", "device_id", "center_id", "reason")
_INT = ("event_ts", "raised_ts", "updated_ts")
_NUM = ("distance_m", "lat", "lon")


def encode_alert(alert: AlertMessage) -> bytes:
    """Return the payload of contract §2 for `alert`."""
    body: dict[str, Any] = {"v": CONTRACT_VERSION, **asdict(alert)}
    for key in ("kind", "severity", "status"):
        body[key] = body[key].value
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def decode_alert(payload: bytes) -> AlertMessage:
    """Parse an alert payload strictly (used by consumers of the alert feed and by tests).

    Raises:
        PayloadError: `bad_json`, `too_large` or `bad_schema`.
    """
    obj = parse_json_object(payload)
    fields = ("v", "kind", "severity", "status", "in_coverage", *_STR, *_INT, *_NUM)
    missing = [k for k in fields if k not in obj]
    if missing:
        raise PayloadError(ReasonCode.BAD_SCHEMA, f"missing {', '.join(missing)}")
    if obj["v"] != CONTRACT_VERSION or isinstance(obj["v"], bool):
        raise PayloadError(ReasonCode.BAD_SCHEMA, "v must be 1")
    checks = [
        *((k, isinstance(obj[k], str)) for k in _STR),
        *((k, isinstance(obj[k], int) and not isinstance(obj[k], bool)) for k in _INT),
        *((k, isinstance(obj[k], int | float) and not isinstance(obj[k], bool)) for k in _NUM),
        ("in_coverage", isinstance(obj["in_coverage"], bool)),
    ]
    wrong = [k for k, ok in checks if not ok]
    if wrong:
        raise PayloadError(ReasonCode.BAD_SCHEMA, f"wrong type: {', '.join(wrong)}")
    try:
        values: dict[str, Any] = {k: obj[k] for k in _STR + _INT}
        values.update({k: float(obj[k]) for k in _NUM})
        return AlertMessage(
            kind=AlertKind(obj["kind"]),
            severity=Severity(obj["severity"]),
            status=AlertStatus(obj["status"]),
            in_coverage=obj["in_coverage"],
            **values,
        )
    except ValueError as exc:
        raise PayloadError(ReasonCode.BAD_SCHEMA, str(exc)) from exc
