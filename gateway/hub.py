"""The home hub bridge: local devices' messages forwarded upstream through a durable queue.

Local side: the home's own Mosquitto, where buttons and smoke detectors publish under the
contract (contract §1 topics). The hub holds a persistent MQTT 5 session there (QoS 1, manual
acknowledgement) and acknowledges a message only once it is committed to the on-disk queue
(gateway.hub_queue), so a hub killed at any moment loses nothing: the local broker redelivers
what was not acknowledged. Uplink: the platform broker, logged in as the hub's own account
(`hub_<elder id>`), whose ACL lets it publish only on the topics of its home's devices. A
queued message leaves the queue only on its PUBACK (MQTT 5 §4.3.2); a refusal (reason code
≥ 0x80, e.g. 0x87 Not authorized) is counted and dropped, anything unacknowledged at a
disconnect is sent again, in queue order, after the reconnect. A repeat is the same message
(`device_id, ts, seq`) and ingest stores it once (contract §1).

The hub reports itself, retained and QoS 1, on `eldercare/v1/hubs/{hub_id}/status` (with the
deployment's prefix): `{"v":1, "hub_id", "online", "ts", "queue_depth", "queue_bytes",
"dropped", "refused"}`; its Last Will there is `{"v":1, "hub_id", "online":false}`.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.contract import TOPIC_ROOT, Channel, ReasonCode
from gateway.errors import PayloadError
from gateway.hub_queue import HubQueue, Incoming
from gateway.mqtt import DEFAULT_MQTT_URL, connect_properties, make_client, parse_mqtt_url
from gateway.topics import device_filter, device_topic, parse_device_topic

logger = logging.getLogger(__name__)

# Contract §1 "smoke": above 0.02 dB/m a detector reports every 5 s because smoke is present;
# those readings are the run-up to an alarm and are kept like events.
SMOKE_RISING_DB_M = 0.02
# Contract preamble: payloads are at most 16 KiB; the platform broker refuses larger packets.
MAX_PAYLOAD_BYTES = 16 * 1024


class HubSettings(BaseSettings):
    """The hub's settings (env prefix HUB_); the uplink login comes from MQTT_USERNAME and
    MQTT_PASSWORD_FILE (gateway.settings), never from a URL on the command line."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    hub_id: str = Field(description="the elder (home) id the hub's account speaks for")
    local_url: str = DEFAULT_MQTT_URL
    upstream_url: str = DEFAULT_MQTT_URL
    local_prefix: str = ""
    upstream_prefix: str = ""
    queue_path: Path = Path("var/hub/queue.sqlite3")
    # 64 MiB: at ~250 bytes a message, days of a home's devices (a band every 30 s, a smoke
    # detector every 60 s) while the uplink is down.
    max_queue_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # Unacknowledged QoS 1 publishes on the uplink; far below paho's 16-bit message ids.
    inflight_max: int = Field(default=200, ge=1, le=20_000)
    status_interval_s: float = Field(default=60.0, gt=0)
    reconnect_max_s: int = Field(default=10, ge=1)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)


def hub_status_topic(hub_id: str, prefix: str = "") -> str:
    """The topic the hub reports itself on."""
    return f"{prefix}{TOPIC_ROOT}/hubs/{hub_id}/status"


def droppable(channel: Channel, payload: bytes) -> bool:
    """Whether a message is routine telemetry, the first thing dropped when storage is full.

    Events and statuses never are; nor is smoke telemetry while smoke is present.
    """
    if channel is not Channel.TELEMETRY:
        return False
    try:
        body = json.loads(payload)
        level = body.get("smoke_db_m") if isinstance(body, dict) else None
    except ValueError:
        return True
    return not (isinstance(level, int | float) and level > SMOKE_RISING_DB_M)


def to_incoming(topic: str, payload: bytes, local_prefix: str, upstream_prefix: str) -> Incoming:
    """The queue entry for a local message.

    Raises:
        PayloadError: a topic that is not a device topic of the contract.
    """
    parsed = parse_device_topic(topic, local_prefix)
    return Incoming(
        device_id=parsed.device_id,
        topic=device_topic(parsed.device_id, parsed.channel, upstream_prefix),
        payload=payload,
        retain=parsed.channel is Channel.STATUS,
        droppable=droppable(parsed.channel, payload),
    )


@dataclass
class _Uplink:
    """What the main loop knows about the uplink session."""

    connected: bool = False
    sent_after: int = 0
    inflight: dict[int, int] = field(default_factory=dict)  # paho mid -> queue id


class Hub:
    """The bridge; `run(stop)` until `stop` is set."""

    def __init__(self, settings: HubSettings) -> None:
        """Open the queue and build both clients (nothing connects yet)."""
        self.settings = settings
        self.queue = HubQueue(settings.queue_path, settings.max_queue_bytes)
        self._inbox: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._events: queue.Queue[tuple[str, int, int]] = queue.Queue()
        self._up = _Uplink()
        self._local = self._make_local()
        self._upstream = self._make_upstream()

    def _make_local(self) -> paho.Client:
        s = self.settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"eldercare-hub-{s.hub_id}",
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        client.reconnect_delay_set(1, s.reconnect_max_s)
        client.on_socket_open = _nodelay
        client.on_connect = self._on_local_connect
        client.on_message = lambda c, u, msg: self._inbox.put(msg)
        return client

    def _make_upstream(self) -> paho.Client:
        s = self.settings
        client = make_client(f"eldercare-hub-{s.hub_id}", address=parse_mqtt_url(s.upstream_url))
        client.reconnect_delay_set(1, s.reconnect_max_s)
        will = {"v": 1, "hub_id": s.hub_id, "online": False}
        client.will_set(hub_status_topic(s.hub_id, s.upstream_prefix), json.dumps(will), 1, True)
        client.on_connect = lambda c, u, f, rc, p: self._events.put(("up", 0, int(rc.value)))
        client.on_disconnect = lambda c, u, f, rc, p: self._events.put(("down", 0, 0))
        client.on_publish = lambda c, u, mid, rc, p: self._events.put(("ack", mid, int(rc.value)))
        return client

    def _on_local_connect(self, client: paho.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        # retain_handling 1: retained statuses only on a new subscription, not at every
        # reconnect of the persistent session (MQTT 5 §3.8.3.1).
        logger.info("home broker: connected (%s), session present: %s", rc, f.session_present)
        opts = SubscribeOptions(qos=1, retainHandling=1)
        client.subscribe(device_filter(self.settings.local_prefix), options=opts)

    def run(self, stop: threading.Event) -> None:
        """Bridge until `stop` is set, then close the sessions (the queue stays on disk)."""
        s = self.settings
        local, up = parse_mqtt_url(s.local_url), parse_mqtt_url(s.upstream_url)
        props = connect_properties(session_expiry_s=s.session_expiry_s)
        self._local.connect_async(local.host, local.port, clean_start=False, properties=props)
        self._upstream.connect_async(up.host, up.port, clean_start=True)
        self._local.loop_start()
        self._upstream.loop_start()
        next_status = 0.0
        try:
            while not stop.is_set():
                self._store(timeout_s=0.05)
                self._handle_events()
                self._send()
                if self._up.connected and time.monotonic() >= next_status:
                    self.publish_status()
                    next_status = time.monotonic() + s.status_interval_s
        finally:
            self._local.disconnect()
            self._upstream.disconnect()
            self._local.loop_stop()
            self._upstream.loop_stop()
            self.queue.close()

    def _store(self, timeout_s: float) -> None:
        try:
            batch = [self._inbox.get(timeout=timeout_s)]
        except queue.Empty:
            return
        while len(batch) < 1000:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        items = []
        for msg in batch:
            try:
                if len(msg.payload) > MAX_PAYLOAD_BYTES:
                    raise PayloadError(ReasonCode.TOO_LARGE, f"{len(msg.payload)} bytes")
                items.append(to_incoming(msg.topic, bytes(msg.payload), *self._prefixes()))
            except PayloadError as exc:
                logger.warning("not forwarded: %s on %s", exc, msg.topic[:200])
        dropped = self.queue.add(items) if items else 0
        if dropped:
            logger.warning("queue full: dropped %d routine telemetry message(s)", dropped)
        for msg in batch:  # only now is each message on disk
            self._local.ack(msg.mid, msg.qos)

    def _prefixes(self) -> tuple[str, str]:
        return self.settings.local_prefix, self.settings.upstream_prefix

    def _handle_events(self) -> None:
        delivered: list[int] = []
        refused = 0
        while True:
            try:
                kind, mid, code = self._events.get_nowait()
            except queue.Empty:
                break
            if kind == "up" and code < 0x80:
                logger.info("uplink connected; %d message(s) queued", self.queue.depth())
                self._up = _Uplink(connected=True)
                self.publish_status()
            elif kind == "down":
                # Whatever was in flight is sent again, in queue order, after the reconnect.
                self._up = _Uplink()
            elif kind == "ack" and mid in self._up.inflight:
                delivered.append(self._up.inflight.pop(mid))
                if code >= 0x80:
                    refused += 1
                    logger.warning("uplink refused a message (reason code %#x)", code)
        if delivered:
            self.queue.delete(delivered, refused)

    def _send(self) -> None:
        up = self._up
        room = self.settings.inflight_max - len(up.inflight)
        if not up.connected or room <= 0:
            return
        for item in self.queue.pending(up.sent_after, room):
            info = self._upstream.publish(item.topic, item.payload, qos=1, retain=item.retain)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                return
            up.inflight[info.mid] = item.id
            up.sent_after = item.id

    def publish_status(self) -> None:
        """Publish the hub's retained status with its queue depth and counters."""
        s, q = self.settings, self.queue
        body = {
            "v": 1,
            "hub_id": s.hub_id,
            "online": True,
            "ts": int(time.time() * 1000),
            "queue_depth": q.depth(),
            "queue_bytes": q.stored_bytes(),
            "dropped": q.counter("dropped"),
            "refused": q.counter("refused"),
        }
        topic = hub_status_topic(s.hub_id, s.upstream_prefix)
        self._upstream.publish(topic, json.dumps(body), qos=1, retain=True)


def _nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        logger.debug("TCP_NODELAY not set on %r", sock)
