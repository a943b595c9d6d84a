"""MQTT adapter of the alerting service: shared subscription in, alert feed out (I/O only)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.mqtt import connect_properties, make_client, parse_mqtt_url
from gateway.topics import device_filter

logger = logging.getLogger(__name__)

# paho's message ids are 16-bit: keep well under 65,535 QoS 1 publishes outstanding.
MAX_OUTSTANDING = 10_000


@dataclass(frozen=True, slots=True)
class Inbound:
    """One device message as received (acknowledged later, once handled)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    recv_ms: int


def shared_filter(group: str, prefix: str) -> str:
    """`$share/{group}/{prefix}eldercare/v1/devices/+/+` (MQTT 5 §4.8.2).

    An empty group gives the plain filter, for a single service (see ingest.mqtt.share_filter:
    Mosquitto 2.0 does not restore shared subscriptions when it restarts).
    """
    if not group:
        return device_filter(prefix)
    return f"$share/{group}/{device_filter(prefix)}"


class AlertingMqtt:
    """One paho client: consumes device topics with manual acks and publishes alerts."""

    def __init__(
        self,
        mqtt_url: str,
        client_id: str,
        *,
        group: str,
        prefix: str,
        session_expiry_s: int,
        inbox: queue.Queue[Inbound],
        subscribe: bool = True,
    ) -> None:
        self._address = parse_mqtt_url(mqtt_url)
        self._filter = shared_filter(group, prefix)
        self._subscribe = subscribe
        self._inbox = inbox
        self._session_expiry_s = session_expiry_s
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_OUTSTANDING)
        self.client = make_client(client_id, mqtt5=True, manual_ack=True, address=self._address)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.max_queued_messages_set(0)

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (persistent session), subscribe, and wait until the subscription holds.

        Raises:
            TimeoutError: the broker did not accept the connection or subscription in time.
        """
        self.client.connect(
            self._address.host,
            self._address.port,
            keepalive=30,
            clean_start=False,
            properties=connect_properties(session_expiry_s=self._session_expiry_s),
        )
        self.client.loop_start()
        wanted = self._subscribed if self._subscribe else self._connected
        if not wanted.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"broker {self._address.url} did not accept us in {timeout_s} s")

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish QoS 1, not retained (contract §2), bounding outstanding message ids."""
        if not self._slots.acquire(timeout=30):
            raise TimeoutError("too many unacknowledged alert publishes")
        info = self.client.publish(topic, payload, qos=1, retain=False)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self._slots.release()
            logger.warning("alert publish on %s not queued (rc %s)", topic, info.rc)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a handled QoS 1 message (MQTT 5 §4.3.2)."""
        if qos > 0:
            self.client.ack(mid, qos)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any = None
    ) -> None:
        if rc.is_failure:
            logger.warning("broker refused the connection: %s", rc)
            return
        self._connected.set()
        if self._subscribe:
            client.subscribe(self._filter, options=SubscribeOptions(qos=1))

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, rcs: Any, props: Any = None
    ) -> None:
        self._subscribed.set()

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any = None
    ) -> None:
        self._connected.clear()
        if rc.is_failure:
            logger.warning("disconnected from the broker: %s; paho reconnects", rc)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self._inbox.put(
            Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, int(time.time() * 1000))
        )

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, rc: Any, props: Any = None
    ) -> None:
        try:
            self._slots.release()
        except ValueError:
            logger.debug("publish ack for mid %d without a slot", mid)
