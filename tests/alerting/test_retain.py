"""The alerting subscription on a real Mosquitto: no retained replays on a resumed session,
a broker that is down at start is waited for, and a refused subscription is fatal."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from alerting.mqtt import AlertingMqtt, Inbox, SubscriptionRefused
from eldercare.broker import free_port, start_mosquitto, stop
from gateway import DeviceType, Event, Status, encode_message
from gateway.mqtt import connect_properties, make_client, parse_mqtt_url
from tests.alerting.helpers import DevicePublisher, prepare_db, running, settings_for, small_fleet


def _publish_retained(url: str, topic: str, payload: bytes) -> None:
    address = parse_mqtt_url(url)
    client = make_client(address=address)
    client.connect(address.host, address.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def _take_over_session(url: str, client_id: str, session_expiry_s: int) -> None:
    """Connect with the service's client id (the broker drops the service's connection,
    MQTT 5 §3.1.4) and leave the session in place for it to resume."""
    address = parse_mqtt_url(url)
    client = make_client(client_id, mqtt5=True, address=address)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p=None: connected.set()
    client.connect(
        address.host,
        address.port,
        clean_start=False,
        properties=connect_properties(session_expiry_s=session_expiry_s),
    )
    client.loop_start()
    assert connected.wait(5)
    client.disconnect()
    client.loop_stop()


def _until(pred: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_resumed_session_gets_no_retained_status_replays(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    band = f"band-{device_suffix}"
    topic, payload = encode_message(
        Status(device_id=band, type=DeviceType.BAND, online=True), topic_prefix
    )
    _publish_retained(mqtt_url, topic, payload)
    settings = settings_for(mqtt_url, schema_url, topic_prefix, share_group="")
    devices = DevicePublisher(mqtt_url, topic_prefix)
    try:
        with running(settings) as service:
            # A new subscription gets the retained status once, flagged as retained.
            assert _until(lambda: service.stats.received == 1, 10)
            assert service.stats.retained == 1
            assert service.mqtt is not None
            _take_over_session(mqtt_url, settings.client_id, settings.session_expiry_s)
            assert _until(lambda: not service.mqtt.connected, 5)
            assert _until(lambda: service.mqtt.connected, 20)
            # The resumed subscription is live but replays nothing.
            ts = int(time.time() * 1000)
            press = Event(
                device_id=f"btn-{device_suffix}",
                type=DeviceType.BUTTON,
                seq=1,
                ts=ts,
                event="press",
            )
            devices.send(press)
            assert _until(lambda: service.stats.received >= 2, 10)
            time.sleep(1.0)
            received, retained = service.stats.received, service.stats.retained
    finally:
        devices.close()
        _publish_retained(mqtt_url, topic, b"")  # clear the retained status
    assert (received, retained) == (2, 1)


def _mqtt(url: str, prefix: str) -> AlertingMqtt:
    return AlertingMqtt(
        url,
        f"alerting-{uuid.uuid4().hex[:8]}",
        group="",
        prefix=prefix,
        session_expiry_s=60,
        inbox=Inbox(10),
    )


@pytest.mark.slow
def test_start_waits_for_a_broker_that_is_down(tmp_path: Path, topic_prefix: str) -> None:
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    procs = []
    timer = threading.Timer(2.0, lambda: procs.append(start_mosquitto(port, tmp_path / "m")))
    timer.start()
    mqtt = _mqtt(url, topic_prefix)
    try:
        began = time.monotonic()
        mqtt.start(timeout_s=5.0)
        assert mqtt.connected
        assert time.monotonic() - began >= 1.5
    finally:
        timer.join()
        mqtt.stop()
        for proc in procs:
            stop(proc)


def test_a_refused_subscription_is_fatal_and_names_the_filter(
    tmp_path: Path, topic_prefix: str
) -> None:
    # Mosquitto's dynamic security plugin refuses every subscription (SUBACK 0x87).
    dynsec = tmp_path / "dynsec.json"
    dynsec.write_text(
        '{"defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true,'
        ' "subscribe": false, "unsubscribe": true}, "clients": [], "groups": [], "roles": []}'
    )
    conf = (
        "allow_anonymous true\n"
        "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n"
        f"plugin_opt_config_file {dynsec}\n"
    )
    port = free_port()
    proc = start_mosquitto(port, tmp_path / "m", conf)
    mqtt = _mqtt(f"mqtt://127.0.0.1:{port}", topic_prefix)
    try:
        began = time.monotonic()
        with pytest.raises(SubscriptionRefused, match=r"0x87") as refused:
            mqtt.start(timeout_s=5.0)
        assert f"{topic_prefix}eldercare/v1/devices/+/" in str(refused.value)
        assert time.monotonic() - began < 5.0
    finally:
        stop(proc)
