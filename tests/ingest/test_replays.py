"""Retained statuses replayed by the broker are not new traffic (real Mosquitto).

Mosquitto resends every retained status when a subscription is made. Ingest subscribes with
Retain Handling 1 (MQTT 5 §3.8.3.1), so a resumed session gets none; a new session gets them
with the RETAIN flag, and then a replayed Will is stored once and `last_seen` does not move.
"""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest

from gateway import DeviceType, Fleet
from tests.ingest.conftest import Publisher, running, settings_for, wait_for
from tests.ingest.streams import now_ms

pytestmark = pytest.mark.slow


def _state(url: str, device_id: str) -> tuple[list[tuple[bool, bool]], object, object]:
    with psycopg.connect(url, autocommit=True) as conn:
        statuses = conn.execute(
            "SELECT online, has_ts FROM device_status WHERE device_id = %s ORDER BY received_at",
            (device_id,),
        ).fetchall()
        seen = conn.execute(
            "SELECT last_seen_at, online FROM device_last_seen WHERE device_id = %s",
            (device_id,),
        ).fetchone()
    return [(bool(o), bool(t)) for o, t in statuses], *(seen or (None, None))


def _go_offline(url: str, mqtt_url: str, prefix: str, fleet: Fleet, pub: Publisher) -> str:
    """A band reports, then its Will arrives; returns the band's id."""
    band = next(d for d in fleet.devices if d.type is DeviceType.BAND)
    root = f"{prefix}eldercare/v1/devices/{band.id}"
    status = {"v": 1, "type": "band", "online": True, "ts": now_ms(), "heartbeat_s": 60}
    fix = {"v": 1, "type": "band", "seq": 1, "ts": now_ms(), "lat": 39.9, "lon": 116.3, "hacc_m": 5}
    with running(settings_for(url, mqtt_url, prefix)):
        pub.client.publish(f"{root}/status", json.dumps(status).encode(), qos=1, retain=True)
        pub.publish(f"{root}/telemetry", json.dumps(fix).encode())
        pub.wait()
        assert wait_for(lambda: len(_state(url, band.id)[0]) == 1, 30)
        # The Will as the broker publishes it for the device (contract §1: retained).
        will = json.dumps({"v": 1, "type": "band", "online": False}).encode()
        pub.client.publish(f"{root}/status", will, qos=1, retain=True).wait_for_publish(10)
        assert wait_for(lambda: len(_state(url, band.id)[0]) == 2, 30)
    return band.id


def _clear_retained(pub: Publisher, prefix: str, device_id: str) -> None:
    topic = f"{prefix}eldercare/v1/devices/{device_id}/status"
    pub.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)


def test_a_replayed_will_is_stored_once_and_last_seen_stays(
    registered: str, mqtt_url: str, topic_prefix: str, fleet: Fleet, publisher: Publisher
) -> None:
    band = _go_offline(registered, mqtt_url, topic_prefix, fleet, publisher)
    before = _state(registered, band)
    assert before[0] == [(True, True), (False, False)] and before[2] is False
    try:
        for _ in range(3):
            # A new session each time: the broker replays the retained Will to it.
            settings = settings_for(registered, mqtt_url, topic_prefix)
            with running(settings) as service:
                assert wait_for(lambda s=service: s.metrics.received._value.get() >= 1, 30)
                time.sleep(0.5)  # let the replay's batch commit
            assert _state(registered, band) == before
    finally:
        _clear_retained(publisher, topic_prefix, band)


def test_a_resumed_session_gets_no_retained_replays(
    registered: str, mqtt_url: str, topic_prefix: str, fleet: Fleet, publisher: Publisher
) -> None:
    band = _go_offline(registered, mqtt_url, topic_prefix, fleet, publisher)
    before = _state(registered, band)
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    received = []
    try:
        for _ in range(3):
            settings = settings_for(registered, mqtt_url, topic_prefix, client_id=client_id)
            with running(settings) as service:
                time.sleep(2.0)  # a replay arrives right after the SUBACK
                received.append(service.metrics.received._value.get())
    finally:
        _clear_retained(publisher, topic_prefix, band)
    assert received[1:] == [0, 0], received  # the first session is new: it may get the Will
    assert _state(registered, band) == before
