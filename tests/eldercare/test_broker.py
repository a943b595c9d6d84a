"""Broker selection for `eldercare up`: $MQTT_URL, the local broker, or one started here."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from eldercare import broker
from eldercare.broker import BrokerUnavailable, ensure_broker, free_port, mqtt5_refusal
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


def test_mqtt_url_wins(monkeypatch: pytest.MonkeyPatch, mqtt_url: str) -> None:
    monkeypatch.setenv("MQTT_URL", mqtt_url)
    assert ensure_broker(f"mqtt://127.0.0.1:{free_port()}") == mqtt_url


def test_mqtt_url_without_mqtt5_is_refused(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    # A real server that is no MQTT 5 broker: PostgreSQL's port.
    pg = urlsplit(database_url)
    monkeypatch.setenv("MQTT_URL", f"mqtt://{pg.hostname}:{pg.port or 5432}")
    with pytest.raises(BrokerUnavailable, match=r"MQTT_URL: .*no MQTT 5.*install Mosquitto"):
        ensure_broker()


def test_a_reachable_local_broker_is_used(monkeypatch: pytest.MonkeyPatch, mqtt_url: str) -> None:
    monkeypatch.delenv("MQTT_URL", raising=False)
    assert ensure_broker(mqtt_url) == mqtt_url
    assert mqtt5_refusal(mqtt_url) is None


def test_mosquitto_is_started_when_nothing_answers(
    monkeypatch: pytest.MonkeyPatch, topic_prefix: str
) -> None:
    monkeypatch.delenv("MQTT_URL", raising=False)
    silent = f"mqtt://127.0.0.1:{free_port()}"
    url = ensure_broker(silent)
    assert url != silent
    assert mqtt5_refusal(url) is None
    assert round_trip(url, f"{topic_prefix}x") == b"hello"


def test_no_broker_and_no_mosquitto_is_an_error_not_a_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MQTT_URL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no mosquitto on it
    silent = f"mqtt://127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailable, match=r"mosquitto is not installed.*MQTT_URL"):
        ensure_broker(silent)
    with pytest.raises(BrokerUnavailable):
        ensure_broker(silent, allow_mosquitto=False)


def test_amqtt_is_gone() -> None:
    assert importlib.util.find_spec("amqtt") is None
    assert not hasattr(broker, "start_amqtt")
