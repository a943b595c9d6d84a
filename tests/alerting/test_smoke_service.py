"""Smoke verification through the running service, broker and database: a cooking peak pages at
the crossing as unverified and is resolved as a nuisance when it clears; a fire stays open."""

from __future__ import annotations

import time

import psycopg

from alerting import store
from gateway import AlertKind, AlertStatus, DeviceType, SmokeTelemetry
from tests.alerting.helpers import (
    AlertListener,
    DevicePublisher,
    prepare_db,
    running,
    settings_for,
    small_fleet,
)


def _reading(suffix: str, seq: int, ts: int, db_m: float) -> SmokeTelemetry:
    return SmokeTelemetry(
        device_id=f"smoke-{suffix}", type=DeviceType.SMOKE, seq=seq, ts=ts, smoke_db_m=db_m,
        temp_c=23.0,
    )  # fmt: skip


def test_a_clearing_nuisance_is_resolved_as_nuisance_and_the_family_feed_sees_it(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    try:
        with running(settings_for(mqtt_url, schema_url, topic_prefix)):
            ts = int(time.time() * 1000) - 60_000
            # A slow cooking peak: 0.045, then just over the threshold, then gone 30 s later.
            devices.send(_reading(device_suffix, 0, ts, 0.045))
            sent = time.monotonic()
            devices.send(_reading(device_suffix, 1, ts + 5_000, 0.052))
            _, opened, got = listener.next(5)
            devices.send(_reading(device_suffix, 2, ts + 10_000, 0.053))
            devices.send(_reading(device_suffix, 3, ts + 35_000, 0.01))
            _, closed, _ = listener.wait_for(lambda t, m: m.status is not AlertStatus.OPEN, 10)
        assert opened.kind is AlertKind.SMOKE and opened.status is AlertStatus.OPEN
        assert opened.reason.startswith("unverified") and got - sent < 1.0
        assert closed.alert_id == opened.alert_id and closed.status is AlertStatus.RESOLVED
        with psycopg.connect(schema_url) as conn:
            (alert,) = store.list_alerts(conn)
            notes = [
                r[0]
                for r in conn.execute(
                    "SELECT note FROM alert_transitions WHERE alert_id = %s", (alert.alert_id,)
                )
            ]
        assert alert.status is AlertStatus.RESOLVED and alert.acked_ts is None
        assert any(n.startswith("nuisance:") for n in notes)
    finally:
        listener.close()
        devices.close()
