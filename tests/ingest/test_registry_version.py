"""Ingest reloads its device registry only when the registry changed (migration 043)."""

from __future__ import annotations

import logging

import pytest

from gateway import Fleet
from ingest.db import connect
from ingest.service import IngestService
from tests.ingest.conftest import settings_for


def test_refresh_loads_only_after_a_change(
    registered: str, fleet: Fleet, device_suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    service = IngestService(settings_for(registered, "mqtt://127.0.0.1:1883", ""))
    with connect(registered) as conn:
        service._conn = conn
        caplog.set_level(logging.INFO, logger="ingest.service")

        def loads() -> int:
            return sum("registry loaded" in r.getMessage() for r in caplog.records)

        service.refresh_registry()
        assert loads() == 1 and len(service._registry) == len(fleet.devices)
        service.refresh_registry()
        service.refresh_registry()
        assert loads() == 1  # nothing changed: one row read, no reload
        with connect(registered) as other:
            other.execute(
                "INSERT INTO devices (id, type, elder_id) VALUES (%s, 'button', %s)",
                (f"new-{device_suffix}", fleet.elders[0].id),
            )
            other.commit()
        service.refresh_registry()
        assert loads() == 2 and f"new-{device_suffix}" in service._registry
        with connect(registered) as other:
            other.execute("UPDATE care_centers SET on_duty = NOT on_duty")
            other.commit()
        service.refresh_registry()
        assert loads() == 2  # duty switches are not registry changes
