"""MQTT adapter of ingest: a persistent MQTT 5 session on a shared subscription, manual acks."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode as MqttReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway import device_filter
from gateway.mqtt import connect_properties, make_client, parse_mqtt_url
from ingest.batch import Inbound
from ingest.settings import IngestSettings

logger = logging.getLogger(__name__)


def share_filter(group: str, prefix: str) -> str:
    """`$share/{group}/{prefix}eldercare/v1/devices/+/+` (MQTT 5 §4.8.2 shared subscriptions).

    An empty group gives the plain filter, for a single consumer: Mosquitto 2.0.11 does not
    restore shared subscriptions from its persistence file, so after a broker restart a shared
    consumer misses what is published before it re-subscribes; a plain one misses nothing.
    """
    if not group:
        return device_filter(prefix)
    return f"$share/{group}/{device_filter(prefix)}"


def subscribe_options() -> SubscribeOptions:
    """QoS 1 with Retain Handling 1 (MQTT 5 §3.8.3.1): retained messages only when the
    subscription is new, so a resumed session gets no replays of retained statuses.

    Retain As Published stays 0, so a message the broker sends from its retained store is the
    only kind that arrives with the RETAIN flag set (§3.3.1.3): ingest treats it as a replay.
    """
    return SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)


class Subscription:
    """Receives device messages into a bounded queue; acknowledges them when told to.

    The paho callbacks only stamp and enqueue. When the queue is full, `on_message` waits, so
    paho stops reading the socket and the broker stops sending once its in-flight window is
    full: that is the backpressure when the database is slow.
    """

    def __init__(
        self,
        settings: IngestSettings,
        out: queue.Queue[Inbound],
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._settings = settings
        self._out = out
        self._clock_ms = clock_ms
        self._generation = 0
        self._closing = threading.Event()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._address = parse_mqtt_url(settings.mqtt_url)
        self._client = make_client(
            settings.client_id, manual_ack=True, address=self._address, consumer=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.reconnect_delay_set(
            min_delay=max(1, int(settings.reconnect_min_s)), max_delay=int(settings.reconnect_max_s)
        )

    @property
    def connections(self) -> int:
        """How many times the broker accepted this client (1 after the first connect)."""
        return self._generation

    @property
    def topic_filter(self) -> str:
        """The shared-subscription filter in use."""
        return share_filter(self._settings.share_group, self._settings.topic_prefix)

    def start(self) -> None:
        """Connect in the background (paho retries with backoff until the broker answers)."""
        s = self._settings
        self._client.connect_async(
            self._address.host,
            self._address.port,
            keepalive=s.keepalive_s,
            clean_start=False,
            properties=connect_properties(s.session_expiry_s, s.receive_maximum),
        )
        self._client.loop_start()

    def ack(self, items: Iterable[Inbound]) -> int:
        """Acknowledge QoS 1 messages of the current connection, in the order received.

        Messages of an earlier connection are not acknowledged: the broker redelivers them on
        the resumed session (MQTT 5 §4.4) and the database key makes the second copy a no-op.
        """
        generation = self._generation
        sent = 0
        for item in items:
            if item.qos > 0 and item.generation == generation:
                self._client.ack(item.mid, item.qos)
                sent += 1
        return sent

    def close(self) -> None:
        """Stop taking messages; unacknowledged ones stay in the broker session."""
        self._closing.set()

    def stop(self) -> None:
        """Disconnect (the session and its unacknowledged messages persist) and join paho."""
        self._closing.set()
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: MqttReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            logger.warning("broker refused the connection: %s", rc)
            return
        self.subscribed.clear()
        self._generation += 1
        client.subscribe(self.topic_filter, options=subscribe_options())
        self.connected.set()
        logger.info(
            "connected to %s (session present: %s)", self._address.url, flags.session_present
        )

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, rcs: list[MqttReasonCode], props: Any
    ) -> None:
        if any(rc.is_failure for rc in rcs):
            logger.error("the broker refused the subscription %s: %s", self.topic_filter, rcs)
            return
        self.subscribed.set()

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: MqttReasonCode, props: Any
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self._closing.is_set():
            logger.warning("disconnected from the broker (%s); reconnecting", rc)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        payload = msg.payload if isinstance(msg.payload, bytes) else bytes(msg.payload)
        item = Inbound(
            msg.topic,
            payload,
            self._clock_ms(),
            msg.qos,
            msg.mid,
            self._generation,
            retain=bool(msg.retain),
        )
        while not self._closing.is_set():
            try:
                self._out.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
