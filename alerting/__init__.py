"""Alert detection, the alert lifecycle and care-centre dispatch.

The public names are loaded lazily so that importing a pure core module (detectors,
engine, scoring) never pulls in the MQTT or database adapters.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AlertingService": "alerting.service",
    "AlertingSettings": "alerting.settings",
    "AlertRow": "alerting.lifecycle",
    "Engine": "alerting.engine",
    "TransitionError": "alerting.lifecycle",
    "load_fall_model": "alerting.fall_model",
    "ActiveAlert": "alerting.dispatch",
    "Dispatcher": "alerting.dispatch",
    "Move": "alerting.dispatch",
    "MoveKind": "alerting.dispatch",
    "NoCenterError": "alerting.routing",
    "RouteDecision": "alerting.routing",
    "answer_time_kpis": "alerting.kpi",
    "coverage_report": "alerting.coverage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'alerting' has no attribute {name!r}")
