"""Broker selection for `eldercare up`: $MQTT_URL, the local broker, or one started here."""

from __future__ import annotations

import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from eldercare.broker import ensure_broker, free_port
from gateway.mqtt import parse_mqtt_url


def round_trip(url: str, topic: str) -> bytes:
    """Publish a retained QoS 1 message, then read it back from a second client."""
    addr = parse_mqtt_url(url)
    pub = paho.Client(CallbackAPIVersion.VERSION2)
    pub.connect(addr.host, addr.port)
    pub.loop_start()
    pub.publish(topic, b"hello", qos=1, retain=True).wait_for_publish(5)
    got: list[bytes] = []
    done = threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: (got.append(m.payload), done.set())
    sub.on_connect = lambda c, *a: c.subscribe(topic, 1)
    sub.connect(addr.host, addr.port)
    sub.loop_start()
    done.wait(5)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return got[0] if got else b""


def test_mqtt_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_URL", "mqtt://broker.example:1884")
    assert ensure_broker() == "mqtt://broker.example:1884"


def test_a_reachable_local_broker_is_used(monkeypatch: pytest.MonkeyPatch, mqtt_url: str) -> None:
    monkeypatch.delenv("MQTT_URL", raising=False)
    assert ensure_broker(mqtt_url) == mqtt_url


def test_mosquitto_is_started_when_nothing_answers(
    monkeypatch: pytest.MonkeyPatch, topic_prefix: str
) -> None:
    monkeypatch.delenv("MQTT_URL", raising=False)
    silent = f"mqtt://127.0.0.1:{free_port()}"
    url = ensure_broker(silent)
    assert url != silent
    assert round_trip(url, f"{topic_prefix}x") == b"hello"


def test_in_process_broker_when_mosquitto_is_not_allowed(
    monkeypatch: pytest.MonkeyPatch, topic_prefix: str
) -> None:
    monkeypatch.delenv("MQTT_URL", raising=False)
    url = ensure_broker(f"mqtt://127.0.0.1:{free_port()}", allow_mosquitto=False)
    assert round_trip(url, f"{topic_prefix}y") == b"hello"
