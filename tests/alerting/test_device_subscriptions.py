"""A partition's telemetry session subscribes per device, on the real broker: only the named
devices' telemetry arrives, across several SUBSCRIBE packets, registry changes and
reconnects; events still come by the wildcard."""

from __future__ import annotations

import time
import uuid

import paho.mqtt.client as paho

from alerting.mqtt import FILTERS_PER_PACKET, AlertingMqtt, Inbound, Inbox
from gateway.mqtt import make_client, parse_mqtt_url
from gateway.topics import device_topic


def _mqtt(url: str, prefix: str, client_id: str) -> AlertingMqtt:
    return AlertingMqtt(
        url,
        client_id,
        group="",
        prefix=prefix,
        session_expiry_s=60,
        inbox=Inbox(100),
        per_device=True,
    )


class _Sender:
    def __init__(self, url: str, prefix: str) -> None:
        address = parse_mqtt_url(url)
        self.prefix = prefix
        self.client: paho.Client = make_client(address=address)
        self.client.connect(address.host, address.port)
        self.client.loop_start()

    def send(self, device_id: str, channel: str = "telemetry") -> None:
        topic = device_topic(device_id, channel, self.prefix)
        self.client.publish(topic, b"{}", qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _received(mqtt: AlertingMqtt, settle_s: float = 0.5) -> list[str]:
    """Device id and channel of what reached the inbox until it has been quiet `settle_s`."""
    got: list[str] = []
    while True:
        item: Inbound | None = mqtt._inbox.get(timeout=settle_s)
        if item is None:
            return got
        _, device_id, channel = item.topic.rsplit("/", 2)
        got.append(f"{device_id}/{channel}")
        mqtt.ack(item.mid, item.qos, item.urgent)


def test_only_the_named_devices_telemetry_arrives_across_packets_and_changes(
    mqtt_url: str, topic_prefix: str
) -> None:
    ids = [f"d{i:05d}-{uuid.uuid4().hex[:6]}" for i in range(2 * FILTERS_PER_PACKET + 500)]
    mine, other = ids[:-1], ids[-1]
    mqtt = _mqtt(mqtt_url, topic_prefix, f"alerting-{uuid.uuid4().hex[:8]}")
    sender = _Sender(mqtt_url, topic_prefix)
    try:
        mqtt.set_telemetry_devices(mine)
        mqtt.start(timeout_s=20)
        # Ready only once every SUBSCRIBE packet (three here) has been answered.
        assert not mqtt._sessions[0].pending
        for device in (mine[0], mine[FILTERS_PER_PACKET], mine[-1], other):
            sender.send(device)
        sender.send(other, "events")
        assert sorted(_received(mqtt)) == sorted(
            [
                f"{mine[0]}/telemetry",
                f"{mine[FILTERS_PER_PACKET]}/telemetry",
                f"{mine[-1]}/telemetry",
                f"{other}/events",
            ]
        )
        # A registry change while connected: one device leaves, another comes.
        mqtt.set_telemetry_devices([*mine[1:], other])
        time.sleep(0.5)
        sender.send(mine[0])
        sender.send(other)
        assert _received(mqtt) == [f"{other}/telemetry"]
        # A device dropped while disconnected is unsubscribed when the session resumes.
        mqtt.stop()
        mqtt.set_telemetry_devices(mine[2:])
        mqtt.start(timeout_s=20)
        for device in (mine[1], other, mine[2]):
            sender.send(device)
        assert sorted(_received(mqtt)) == [f"{mine[2]}/telemetry"]
    finally:
        sender.close()
        mqtt.stop()


def test_no_devices_yet_is_ready_at_once_and_subscribes_the_first_one(
    mqtt_url: str, topic_prefix: str
) -> None:
    mqtt = _mqtt(mqtt_url, topic_prefix, f"alerting-{uuid.uuid4().hex[:8]}")
    sender = _Sender(mqtt_url, topic_prefix)
    device = f"band-{uuid.uuid4().hex[:8]}"
    try:
        mqtt.start(timeout_s=10)
        sender.send(device)
        assert _received(mqtt) == []
        mqtt.set_telemetry_devices([device])
        time.sleep(0.5)
        sender.send(device)
        assert _received(mqtt) == [f"{device}/telemetry"]
    finally:
        sender.close()
        mqtt.stop()
