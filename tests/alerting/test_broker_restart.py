"""The alerting service across a broker restart (its own Mosquitto, persistence on)."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import pytest

from eldercare.broker import broker_reachable, free_port, start_mosquitto, stop
from gateway import AlertKind, AlertMessage, AlertStatus, DeviceType, Event, decode_alert
from gateway.mqtt import connect_properties, make_client, parse_mqtt_url
from gateway.topics import alert_filter
from tests.alerting.helpers import (
    AlertListener,
    DevicePublisher,
    prepare_db,
    running,
    settings_for,
    small_fleet,
)


def _press(suffix: str, seq: int, ts: int) -> Event:
    return Event(device_id=f"btn-{suffix}", type=DeviceType.BUTTON, seq=seq, ts=ts, event="press")


@pytest.mark.slow
def test_alerts_keep_flowing_after_the_broker_restarts(
    tmp_path: Path, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    port = free_port()
    data_dir = tmp_path / "mosquitto"
    proc = start_mosquitto(port, data_dir)
    url = f"mqtt://127.0.0.1:{port}"
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    try:
        with running(settings_for(url, schema_url, topic_prefix, share_group="")) as service:
            stop(proc)
            assert not broker_reachable(url)
            proc = start_mosquitto(port, data_dir)
            # The persistent session (subscription included) is restored from the broker's
            # persistence file: a device may publish before the service has reconnected.
            devices = DevicePublisher(url, topic_prefix)
            devices.send(_press(device_suffix, 1, int(time.time() * 1000)))
            listener = AlertListener(url, topic_prefix)
            deadline = time.monotonic() + 30
            while not service.raised() and time.monotonic() < deadline:
                time.sleep(0.1)
            raised = service.raised()
            devices.close()
            listener.close()
        assert [(a.kind, a.status) for a in raised] == [(AlertKind.SOS, AlertStatus.OPEN)]
    finally:
        stop(proc)


@pytest.mark.slow
def test_an_escalation_while_the_broker_is_down_reaches_the_next_centre_after(
    tmp_path: Path, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    """paho keeps a QoS 1 publish it could not send and sends it on reconnect: an escalation
    due while the broker is down reaches the next centre's topic once it is back."""
    port = free_port()
    data_dir = tmp_path / "mosquitto"
    proc = start_mosquitto(port, data_dir)
    url = f"mqtt://127.0.0.1:{port}"
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    got: queue.Queue[AlertMessage] = queue.Queue()
    watcher = make_client(f"watch-{device_suffix}", address=parse_mqtt_url(url))
    watcher.reconnect_delay_set(0.2, 1)
    watcher.on_connect = lambda c, u, f, rc, p=None: c.subscribe(alert_filter(topic_prefix), 1)
    watcher.on_message = lambda c, u, m: got.put(decode_alert(bytes(m.payload)))
    watcher.connect("127.0.0.1", port, clean_start=False, properties=connect_properties(600))
    watcher.loop_start()
    settings = settings_for(url, schema_url, topic_prefix, share_group="", escalate_critical_s=4)
    try:
        with running(settings):
            devices = DevicePublisher(url, topic_prefix)
            devices.send(_press(device_suffix, 1, int(time.time() * 1000)))
            first = got.get(timeout=10)
            devices.close()
            assert first.kind is AlertKind.SOS and first.center_id == fleet.care_centers[0].id
            stop(proc)  # the escalation falls due while the broker is away
            time.sleep(7)
            proc = start_mosquitto(port, data_dir)
            deadline = time.monotonic() + 30
            centres = [first.center_id]
            while centres[-1] == first.center_id:
                assert time.monotonic() < deadline, "the escalation never reached a centre"
                centres.append(got.get(timeout=max(0.1, deadline - time.monotonic())).center_id)
        assert centres[-1] == fleet.care_centers[1].id
    finally:
        watcher.loop_stop()
        stop(proc)
