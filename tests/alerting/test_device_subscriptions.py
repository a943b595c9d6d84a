"""A partition's telemetry session subscribes per device, on a real broker with the shipped
configuration (its packet size limit closes the connection on a larger SUBSCRIBE): only the
named devices' telemetry arrives, across many SUBSCRIBE packets, registry changes and
reconnects; events still come by the wildcard."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from alerting.mqtt import FILTER_BYTES_PER_PACKET, AlertingMqtt, Inbound, Inbox, packets_of
from gateway.acl import MAX_PACKET_BYTES
from gateway.mqtt import make_client, parse_mqtt_url
from gateway.topics import device_topic
from tests.alerting.helpers import private_broker
from tests.gateway.auth_broker import auth_broker, issue, make_registry, probe


@pytest.fixture
def shipped_broker(tmp_path: Path) -> Iterator[str]:
    """A private Mosquitto with the shipped configuration; its URL."""
    with private_broker(tmp_path) as broker:
        yield broker.url


def test_packets_keep_order_and_stay_under_the_broker_limit() -> None:
    filters = [f"t/eldercare/v1/devices/{'x' * (i % 60 + 3)}-{i}/telemetry" for i in range(3000)]
    packets = packets_of(filters)
    assert [f for p in packets for f in p] == filters
    assert len(packets) > 10 and all(packets)
    assert all(sum(len(f) + 3 for f in p) <= FILTER_BYTES_PER_PACKET for p in packets)
    assert FILTER_BYTES_PER_PACKET < MAX_PACKET_BYTES - 64  # room for the header and mid
    # Full: a packet closes only when the next filter would not fit.
    for p, nxt in itertools.pairwise(packets):
        assert sum(len(f) + 3 for f in p) + len(nxt[0]) + 3 > FILTER_BYTES_PER_PACKET
    assert packets_of([]) == []


def _mqtt(url: str, prefix: str, client_id: str, inbox_size: int = 100) -> AlertingMqtt:
    return AlertingMqtt(
        url,
        client_id,
        group="",
        prefix=prefix,
        session_expiry_s=60,
        inbox=Inbox(inbox_size),
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
    shipped_broker: str, topic_prefix: str
) -> None:
    mqtt_url = shipped_broker
    ids = [f"cane-d{i:05d}-{uuid.uuid4().hex[:6]}" for i in range(2500)]
    mine, other = ids[:-1], ids[-1]
    middle = len(packets_of([device_topic(d, "telemetry", topic_prefix) for d in mine])[0])
    mqtt = _mqtt(mqtt_url, topic_prefix, f"alerting-{uuid.uuid4().hex[:8]}")
    sender = _Sender(mqtt_url, topic_prefix)
    try:
        mqtt.set_telemetry_devices(mine)
        mqtt.start(timeout_s=20)
        # Ready only once every SUBSCRIBE packet (about 20 here) has been answered.
        assert not mqtt._sessions[0].pending and mqtt.connected
        for device in (mine[0], mine[middle], mine[-1], other):
            sender.send(device)
        sender.send(other, "events")
        assert sorted(_received(mqtt)) == sorted(
            [
                f"{mine[0]}/telemetry",
                f"{mine[middle]}/telemetry",
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
    shipped_broker: str, topic_prefix: str
) -> None:
    mqtt_url = shipped_broker
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


def test_a_restarted_partition_drops_the_filters_of_devices_that_moved_away(
    shipped_broker: str, topic_prefix: str
) -> None:
    mqtt_url = shipped_broker
    """The broker session outlives the process: a device linked to another partition while
    it was down must stop reaching it once it is back."""
    client_id = f"alerting-{uuid.uuid4().hex[:8]}"
    stays, moved = (f"band-{uuid.uuid4().hex[:8]}" for _ in range(2))
    sender = _Sender(mqtt_url, topic_prefix)
    first = _mqtt(mqtt_url, topic_prefix, client_id)
    try:
        first.set_telemetry_devices([stays, moved])
        first.start(timeout_s=10)
    finally:
        first.stop()
    again = _mqtt(mqtt_url, topic_prefix, client_id)
    try:
        again.set_telemetry_devices([stays], others=[moved])
        again.start(timeout_s=10)
        sender.send(moved)
        sender.send(stays)
        assert _received(again) == [f"{stays}/telemetry"]
    finally:
        sender.close()
        again.stop()


def test_the_alerting_account_may_subscribe_per_device_under_the_shipped_acl(
    schema_url: str, device_suffix: str, tmp_path: Path
) -> None:
    """The broker's ACL grants alerting `devices/+/+`; a filter naming one device must be
    granted too, or a partition would stop at start-up with SubscriptionRefused."""
    buttons = make_registry(schema_url, device_suffix, n_devices=2)
    account = issue(schema_url, "alerting", "--service")
    device = issue(schema_url, buttons[0])
    with auth_broker(schema_url, tmp_path / "broker") as broker:
        url = f"mqtt://{account['username']}:{account['password']}@127.0.0.1:{broker.port}"
        mqtt = _mqtt(url, "", f"alerting-{device_suffix}")
        sender = probe(broker.port, buttons[0], device["password"])
        try:
            mqtt.set_telemetry_devices(buttons)
            mqtt.start(timeout_s=10)
            assert mqtt.refused is None
            topic = device_topic(buttons[0], "telemetry")
            assert sender.client.publish(topic, b"{}", qos=1).rc == paho.MQTT_ERR_SUCCESS
            assert _received(mqtt, settle_s=1.0) == [f"{buttons[0]}/telemetry"]
        finally:
            sender.close()
            mqtt.stop()


def test_a_start_that_times_out_behind_a_full_inbox_stops_instead_of_hanging(
    shipped_broker: str, topic_prefix: str
) -> None:
    """QoS 0 telemetry queued for an offline session (the shipped config queues it) is not
    bounded by Receive Maximum: it fills the lane before the SUBACK is read. The start then
    times out, and stopping must not wait for ever on the network thread blocked in the inbox."""
    client_id = f"alerting-{uuid.uuid4().hex[:8]}"
    device = f"cane-{uuid.uuid4().hex[:8]}"
    first = _mqtt(shipped_broker, topic_prefix, client_id)
    first.set_telemetry_devices([device])
    first.start(timeout_s=10)
    first.stop()  # the broker keeps the session and queues for it
    sender = _Sender(shipped_broker, topic_prefix)
    topic = device_topic(device, "telemetry", topic_prefix)
    for _ in range(20):
        sender.client.publish(topic, b"{}", qos=0)
    time.sleep(0.5)
    sender.close()
    again = _mqtt(shipped_broker, topic_prefix, client_id, inbox_size=1)
    again.set_telemetry_devices([device])
    given_up = threading.Event()
    given_up.set()  # one try, then TimeoutError
    outcome: list[BaseException] = []

    def start() -> None:
        try:
            again.start(timeout_s=1.0, stop=given_up)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive(), "stopping hung on the network thread blocked in the inbox"
    assert len(outcome) == 1 and isinstance(outcome[0], TimeoutError), outcome
