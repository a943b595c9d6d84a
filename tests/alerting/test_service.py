"""The alerting service over the real broker and database: device message -> published alert."""

from __future__ import annotations

import time

import psycopg

from alerting import store
from gateway import AlertKind, AlertStatus, DeviceType, Event, Status
from gateway.geo import distance_m
from tests.alerting.helpers import (
    HOME,
    AlertListener,
    DevicePublisher,
    prepare_db,
    running,
    settings_for,
    small_fleet,
)


def _press(suffix: str, seq: int, ts: int, name: str = "press") -> Event:
    return Event(device_id=f"btn-{suffix}", type=DeviceType.BUTTON, seq=seq, ts=ts, event=name)


def test_press_raises_routed_alert_and_restart_keeps_it(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    settings = settings_for(mqtt_url, schema_url, topic_prefix)
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    try:
        with running(settings):
            sent = time.monotonic()
            ts = int(time.time() * 1000)
            devices.send(_press(device_suffix, 1, ts))
            topic, alert, got = listener.next(5)
        center = fleet.care_centers[0]
        assert topic == f"{topic_prefix}eldercare/v1/alerts/{center.id}"
        assert alert.kind is AlertKind.SOS and alert.status is AlertStatus.OPEN
        assert alert.event_ts == ts and alert.device_id == f"btn-{device_suffix}"
        assert abs(alert.distance_m - distance_m(*HOME, center.lat, center.lon)) < 1.0
        assert alert.in_coverage is True
        assert got - sent < 1.0
        # Restart with the alert open, then the same press redelivered and a new one.
        with running(settings):
            devices.send(_press(device_suffix, 1, ts))
            devices.send(_press(device_suffix, 2, ts + 5_000, "long_press"))
            _, again, _ = listener.wait_for(lambda t, m: m.reason == "long press", 5)
        assert again.alert_id == alert.alert_id
        with psycopg.connect(schema_url) as conn:
            alerts = store.list_alerts(conn)
        assert [a.alert_id for a in alerts] == [alert.alert_id]
        assert alerts[0].last_event_ts == ts + 5_000
    finally:
        listener.close()
        devices.close()


def test_cancel_within_grace_and_last_will(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    try:
        with running(settings_for(mqtt_url, schema_url, topic_prefix, will_grace_s=0.5)):
            ts = int(time.time() * 1000)
            devices.send(_press(device_suffix, 1, ts))
            _, opened, _ = listener.next(5)
            devices.send(_press(device_suffix, 2, ts + 4_000, "cancel"))
            _, cancelled, _ = listener.next(5)
            devices.send(
                Status(device_id=f"band-{device_suffix}", type=DeviceType.BAND, online=False)
            )
            _, offline, _ = listener.next(5)
            devices.send(
                Status(
                    device_id=f"band-{device_suffix}",
                    type=DeviceType.BAND,
                    online=True,
                    ts=ts + 9_000,
                    heartbeat_s=300,
                )
            )
            _, back, _ = listener.next(5)
        assert cancelled.alert_id == opened.alert_id
        assert cancelled.status is AlertStatus.CANCELLED
        assert offline.kind is AlertKind.DEVICE_OFFLINE and offline.status is AlertStatus.OPEN
        assert back.alert_id == offline.alert_id and back.status is AlertStatus.RESOLVED
        with psycopg.connect(schema_url) as conn:
            steps = store.history(conn, opened.alert_id)
        assert [(f, t) for _, f, t, *_ in steps] == [(None, "open"), ("open", "cancelled")]
    finally:
        listener.close()
        devices.close()
