"""Escalation, acknowledgement and off-duty re-routing through the running service."""

from __future__ import annotations

import time

import psycopg

from alerting import store
from alerting.cli import publish_once
from gateway import AlertStatus, DeviceType, Event
from tests.alerting.helpers import (
    AlertListener,
    DevicePublisher,
    prepare_db,
    running,
    settings_for,
    small_fleet,
)


def test_unacknowledged_alert_escalates_on_time_and_ack_stops_it(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    first, second = (c.id for c in fleet.care_centers)
    settings = settings_for(
        mqtt_url, schema_url, topic_prefix, escalate_critical_s=1.5, reminder_s=30.0
    )
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    try:
        with running(settings):
            devices.send(
                Event(
                    device_id=f"band-{device_suffix}",
                    type=DeviceType.BAND,
                    seq=1,
                    ts=int(time.time() * 1000),
                    event="sos",
                )
            )
            topic, opened, t_open = listener.next(5)
            assert topic.endswith(f"/alerts/{first}")
            seen = {}
            while len(seen) < 2:
                topic, msg, t_esc = listener.next(5)
                seen[topic.rsplit("/", 1)[1]] = msg
            assert set(seen) == {first, second}
            assert all(
                m.status is AlertStatus.ESCALATED and m.center_id == second for m in seen.values()
            )
            assert 1.3 <= t_esc - t_open <= 3.5
            with psycopg.connect(schema_url) as conn:
                acked = store.transition(
                    conn,
                    opened.alert_id,
                    AlertStatus.ACKNOWLEDGED,
                    "disp-7",
                    "on my way",
                    int(time.time() * 1000),
                )
            publish_once(settings, acked)
            _, ack_msg, _ = listener.next(5)
            assert ack_msg.status is AlertStatus.ACKNOWLEDGED
            time.sleep(2.5)
            assert listener.alerts.empty(), "an acknowledged alert must not escalate"
        with psycopg.connect(schema_url) as conn:
            row = store.get_alert(conn, opened.alert_id)
            steps = store.history(conn, opened.alert_id)
        assert row is not None and row.escalations == 1 and row.center_id == second
        assert [t for _, _, t, *_ in steps] == ["open", "escalated", "acknowledged"]
        assert steps[-1][4] == "disp-7" and steps[-1][5] == "on my way"
    finally:
        listener.close()
        devices.close()


def test_off_duty_centre_reroutes_its_alerts(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    first, second = (c.id for c in fleet.care_centers)
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    try:
        with running(settings_for(mqtt_url, schema_url, topic_prefix)):
            devices.send(
                Event(
                    device_id=f"btn-{device_suffix}",
                    type=DeviceType.BUTTON,
                    seq=1,
                    ts=int(time.time() * 1000),
                    event="press",
                )
            )
            _, opened, _ = listener.next(5)
            assert opened.center_id == first
            with psycopg.connect(schema_url) as conn:
                conn.execute("UPDATE care_centers SET on_duty = false WHERE id = %s", (first,))
                conn.commit()
            _, moved, _ = listener.wait_for(lambda t, m: m.center_id == second, 5)
        assert moved.alert_id == opened.alert_id and moved.status is AlertStatus.ESCALATED
    finally:
        listener.close()
        devices.close()
