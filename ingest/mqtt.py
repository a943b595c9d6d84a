"""MQTT adapter of ingest: a persistent MQTT 5 session on a shared subscription, manual acks."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
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


class Inbox:
    """Received messages on their way from paho's network thread to the consumer, in order.

    Handed over a read batch at a time (`gateway.mqtt.Client.on_read_batch`): one lock and
    one wake-up per batch of up to a thousand messages instead of per message. `put_many`
    blocks while `maxsize` or more wait, so paho stops reading the socket and the broker
    stops sending once its in-flight window is full: that is the backpressure when the
    database is slow. At most `maxsize` plus one read batch wait.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Inbound] = deque()
        self._cond = threading.Condition()

    def put_many(self, items: list[Inbound], closing: threading.Event) -> None:
        """Append `items` once fewer than `maxsize` wait; drop them once `closing` is set
        (nothing takes them any more: unacknowledged, the broker sends them again)."""
        with self._cond:
            while len(self._items) >= self.maxsize and not closing.is_set():
                self._cond.wait(0.2)
            if closing.is_set():
                return
            self._items.extend(items)
            self._cond.notify_all()

    def take(self, limit: int, timeout_s: float) -> list[Inbound]:
        """Up to `limit` messages, oldest first; waits at most `timeout_s` for the first."""
        with self._cond:
            if not self._items and timeout_s > 0:
                self._cond.wait(timeout_s)
            items = self._items
            taken = [items.popleft() for _ in range(min(limit, len(items)))]
            if taken:
                self._cond.notify_all()
            return taken

    def qsize(self) -> int:
        """Messages waiting."""
        return len(self._items)


class Subscription:
    """Receives device messages into a bounded `Inbox`; acknowledges them when told to.

    The paho callbacks only stamp and collect; each read batch goes to the inbox at once.
    """

    def __init__(
        self,
        settings: IngestSettings,
        out: Inbox,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._settings = settings
        self._out = out
        self._batch: list[Inbound] = []  # this read batch's (network thread only)
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
        self._client.on_plain_publish = self._on_plain_publish
        self._client.on_read_batch = self._hand_over
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
        acks = [(i.mid, i.qos) for i in items if i.qos > 0 and i.generation == generation]
        self._client.ack_all(acks)
        return len(acks)

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
        self._batch.append(
            Inbound(
                msg.topic,
                payload,
                self._clock_ms(),
                msg.qos,
                msg.mid,
                self._generation,
                retain=bool(msg.retain),
            )
        )

    def _on_plain_publish(
        self, topic: str, payload: bytes, qos: int, mid: int, retain: bool
    ) -> None:
        self._batch.append(
            Inbound(topic, payload, self._clock_ms(), qos, mid, self._generation, retain=retain)
        )

    def _hand_over(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._out.put_many(batch, self._closing)
