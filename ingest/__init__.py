"""MQTT → database: schema and migrations, registry import, the consumer, dead letters.

The public names are loaded lazily so that importing the pure batching core never pulls
in the MQTT or database adapters.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "IngestService": "ingest.service",
    "IngestSettings": "ingest.settings",
    "IngestMetrics": "ingest.metrics",
    "StorageMode": "ingest.migrate",
    "apply_migrations": "ingest.migrate",
    "storage_mode": "ingest.migrate",
    "recorded_mode": "ingest.migrate",
    "import_fleet": "ingest.registry",
    "load_fleet": "ingest.registry",
    "load_registry": "ingest.registry",
    "build_batch": "ingest.batch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ingest' has no attribute {name!r}")
