"""MQTT adapter of the alerting service: device topics in, alert feed out (I/O only).

Two MQTT sessions: a broker sends one session's messages in order (MQTT 5 §4.6), so behind a
backlog of 100,000 band fixes an SOS would wait for all of them whatever the service does with
its inbox. Events and statuses therefore have their own session (client id + `-urgent`, its
own persistent session and Receive Maximum), and bulk telemetry has the other. Both are held
only by the active process and fenced the same way (alerting.leader).

A partition (alerting.partition) subscribes its bulk session to its own devices' telemetry
topics, one filter per device (`set_telemetry_devices`), so the broker routes each device's
telemetry, the bulk of the traffic, to one process instead of every partition receiving and
dropping all of it. Events and statuses stay on the wildcard filters: they are few, and a
device not yet in a partition's registry still has its SOS seen.

Keep alive: the bulk session has none (a full telemetry lane stops its network thread, see
gateway.mqtt). The urgent session's lane is as large as its Receive Maximum, and events and
statuses are QoS 1 (contract §1), so its network thread is free to ping: with an MQTT keep
alive (`URGENT_KEEPALIVE_S`) a broker that hangs with its sockets open, which TCP keepalive
cannot see (the broker's kernel answers the probes), is found within two intervals, and the
service reports itself not ready until the broker answers again. That session reconnects at
most `URGENT_RECONNECT_MAX_S` apart, so an SOS queued in the broker during a long outage
arrives within seconds of the broker's return, not after a grown backoff. The lane can still
fill when devices break §1 (QoS 0 events, which Receive Maximum does not count) or when the
broker resends after a reconnect what the lane still holds; its network thread then waits,
and after 1.5 intervals the broker closes the connection (QoS 1 messages stay in the session
and come again; QoS 0 ones queued for it are dropped).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.acl import MAX_PACKET_BYTES
from gateway.contract import Channel
from gateway.mqtt import CONSUMER_KEEPALIVE_S, connect_properties, make_client, parse_mqtt_url
from gateway.topics import device_filter, device_topic

logger = logging.getLogger(__name__)

# paho's message ids are 16-bit: keep well under 65,535 QoS 1 publishes outstanding.
MAX_OUTSTANDING = 10_000
URGENT_SUFFIX = "-urgent"
# MQTT keep alive of the urgent session, s (MQTT 5 §3.1.2.10): paho pings after this long
# without traffic and closes the connection when no PINGRESP comes within another interval,
# so a hung broker is noticed within 30 s; the broker drops a silent session after 1.5 x.
URGENT_KEEPALIVE_S = 15
# Longest wait between the urgent session's reconnect attempts, s (paho doubles from 1 s).
URGENT_RECONNECT_MAX_S = 2
# Bytes of topic filters per SUBSCRIBE or UNSUBSCRIBE packet when a partition subscribes per
# device: half the broker's packet limit (gateway.acl.MAX_PACKET_BYTES, 16.5 KiB in the shipped
# Mosquitto config), which closes the connection on a larger packet of any kind. MQTT 5 limits
# only the packet size, not the count of filters.
FILTER_BYTES_PER_PACKET = MAX_PACKET_BYTES // 2


def packets_of(filters: list[str], budget: int = FILTER_BYTES_PER_PACKET) -> list[list[str]]:
    """`filters` in order, split into packets of at most `budget` bytes of filters (each counted
    as its UTF-8 length plus 3: the length prefix and the subscription options)."""
    out: list[list[str]] = []
    size = budget
    for f in filters:
        cost = len(f.encode()) + 3
        if size + cost > budget:
            out.append([])
            size = 0
        out[-1].append(f)
        size += cost
    return out


@dataclass(frozen=True, slots=True)
class Inbound:
    """One device message as received (acknowledged later, once handled)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    recv_ms: int
    # Set on a retained message sent because a subscription was made (MQTT 5 §3.3.1.3):
    # a replay of an old status, not news.
    retain: bool = False
    # Received on the urgent session (and acknowledged on it).
    urgent: bool = False
    # Another partition's (alerting.partition): acknowledged in order, never decoded.
    foreign: bool = False


_URGENT = (f"/{Channel.EVENTS.value}", f"/{Channel.STATUS.value}")


class Inbox:
    """Bounded inbox with a priority lane: events and statuses before bulk telemetry.

    Each lane is FIFO, so one device's telemetry (fall windows, vitals) keeps its order;
    an SOS never waits behind a telemetry backlog. `put` blocks when its lane is full: the
    MQTT network thread then stops reading and the broker holds the backlog (with Receive
    Maximum = `maxsize` the broker never sends more than that unacknowledged anyway).

    Args:
        maxsize: messages per lane.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._urgent: queue.Queue[Inbound] = queue.Queue(maxsize)
        self._bulk: queue.Queue[Inbound] = queue.Queue(maxsize)
        self._items = threading.Semaphore(0)

    def put(self, item: Inbound, timeout: float | None = None) -> None:
        """Queue one message (blocks while its lane is full).

        Raises:
            queue.Full: the lane stayed full for `timeout` seconds (None: wait for ever).
        """
        (self._urgent if item.topic.endswith(_URGENT) else self._bulk).put(item, timeout=timeout)
        self._items.release()

    def get(self, timeout: float) -> Inbound | None:
        """The next message, urgent lane first; None after `timeout` seconds without one."""
        if not self._items.acquire(timeout=timeout):
            return None
        try:
            return self._urgent.get_nowait()
        except queue.Empty:
            return self._bulk.get_nowait()

    def qsize(self) -> int:
        """Messages waiting in both lanes."""
        return self._urgent.qsize() + self._bulk.qsize()


class SubscriptionRefused(RuntimeError):
    """The broker refused the device subscription (a SUBACK reason code >= 0x80)."""


def shared_filter(group: str, prefix: str, channel: str = "+") -> str:
    """`$share/{group}/{prefix}eldercare/v1/devices/+/{channel}` (MQTT 5 §4.8.2).

    An empty group gives the plain filter, for a single service (see ingest.mqtt.share_filter:
    Mosquitto 2.0 does not restore shared subscriptions when it restarts).
    """
    if not group:
        return device_filter(prefix, channel)
    return f"$share/{group}/{device_filter(prefix, channel)}"


class _Session:
    """One paho client and its subscription state."""

    def __init__(self, client_id: str, address: Any, filters: list[str], urgent: bool) -> None:
        self.filters = filters
        self.urgent = urgent
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        # SUBSCRIBE packets sent and not yet answered: message id -> its filters.
        self.pending: dict[int, list[str]] = {}
        # UNSUBSCRIBE packets of dropped devices not yet answered: message id -> device ids.
        self.unsubscribing: dict[int, list[str]] = {}
        self.client = make_client(
            client_id, mqtt5=True, manual_ack=True, address=address, consumer=True
        )
        self.client.max_queued_messages_set(0)
        if urgent:
            self.client.reconnect_delay_set(min_delay=1, max_delay=URGENT_RECONNECT_MAX_S)


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
        inbox: Inbox,
        subscribe: bool = True,
        accept: Callable[[str], bool] | None = None,
        per_device: bool = False,
        urgent_keepalive_s: int = URGENT_KEEPALIVE_S,
    ) -> None:
        """See the class; `per_device`: subscribe telemetry per device (a partition), to the
        devices `set_telemetry_devices` names, instead of the wildcard filter;
        `urgent_keepalive_s`: the urgent session's MQTT keep alive (0: off)."""
        self._address = parse_mqtt_url(mqtt_url)
        self._urgent_keepalive_s = urgent_keepalive_s
        # Whether a topic's message is this partition's (None: all are); the others still
        # pass the inbox, flagged, so each session's acknowledgements keep the order of its
        # messages (MQTT 5 §4.6).
        self._accept = accept
        self._subscribe = subscribe
        self._inbox = inbox
        self._session_expiry_s = session_expiry_s
        self.refused: SubscriptionRefused | None = None
        self._slots = threading.BoundedSemaphore(MAX_OUTSTANDING)
        # Subscriptions of a session from before the split (every channel on one session)
        # are dropped so events do not arrive twice.
        self._legacy = shared_filter(group, prefix)
        self._wildcard = shared_filter(group, prefix, Channel.TELEMETRY.value)
        self._per_device = per_device
        self._group, self._prefix = group, prefix
        # Per device: the devices whose telemetry this session wants, and those dropped
        # while it was disconnected (their filters may still be in the broker's session).
        self._lock = threading.RLock()
        self._wanted: set[str] = set()
        self._dropped: set[str] = set()
        self._closing = False
        bulk = [] if per_device else [self._wildcard]
        urgent = [shared_filter(group, prefix, c.value) for c in (Channel.EVENTS, Channel.STATUS)]
        self._sessions = (
            _Session(client_id, self._address, bulk, urgent=False),
            _Session(client_id + URGENT_SUFFIX, self._address, urgent, urgent=True),
        )
        for session in self._sessions:
            self._wire(session)
        self.client = self._sessions[0].client
        self.urgent_client = self._sessions[1].client

    @property
    def clients(self) -> tuple[paho.Client, ...]:
        """Both paho clients: bulk telemetry, then events and statuses."""
        return tuple(s.client for s in self._sessions)

    def _wire(self, session: _Session) -> None:
        client = session.client
        client.on_connect = lambda c, u, f, rc, p=None: self._on_connect(session, rc)
        client.on_disconnect = lambda c, u, f, rc, p=None: self._on_disconnect(session, rc)
        client.on_subscribe = lambda c, u, mid, rcs, p=None: self._on_subscribe(session, mid, rcs)
        client.on_unsubscribe = lambda c, u, mid, *rest: self._on_unsubscribe(session, mid)
        client.on_message = lambda c, u, msg: self._on_message(session, msg)
        client.on_plain_publish = lambda topic, payload, qos, mid, retain: self._on_publish_fields(
            session, topic, payload, qos, mid, retain
        )
        client.on_publish = self._on_publish

    @property
    def connected(self) -> bool:
        """Whether both broker connections are up."""
        return all(s.connected.is_set() for s in self._sessions)

    def start(
        self,
        timeout_s: float = 10.0,
        stop: threading.Event | None = None,
        max_delay_s: float = 30.0,
    ) -> None:
        """Connect (persistent session), subscribe, and wait until the subscription holds.

        A broker that is down or slow is retried with jittered exponential backoff (0.5 s
        doubling up to `max_delay_s`) until it answers or `stop` is set.

        Raises:
            SubscriptionRefused: the broker refused the subscription (fatal: retrying cannot
                fix an ACL).
            TimeoutError: `stop` was set before the broker accepted us.
        """
        delay_s = 0.5
        while True:
            try:
                self._try_start(timeout_s)
                return
            except (OSError, TimeoutError) as exc:
                if stop is not None and stop.is_set():
                    raise TimeoutError(f"broker {self._address.url} unavailable") from exc
                logger.warning(
                    "broker %s unavailable (%s); retrying in %.1f s",
                    self._address.url,
                    exc,
                    delay_s,
                )
                waited = delay_s * random.uniform(0.8, 1.2)
                if stop is not None:
                    stop.wait(waited)
                else:
                    time.sleep(waited)
                delay_s = min(delay_s * 2, max_delay_s)

    def _try_start(self, timeout_s: float) -> None:
        self._closing = False
        # The urgent session first: an SOS queued while no one was connected comes first.
        for session in reversed(self._sessions):
            session.subscribed.clear()  # set again once this connection's filters hold
            session.client.connect(
                self._address.host,
                self._address.port,
                # A full telemetry lane stops the bulk session reading (gateway.mqtt); the
                # urgent lane never fills, so that session pings (see the module).
                keepalive=self._urgent_keepalive_s if session.urgent else CONSUMER_KEEPALIVE_S,
                clean_start=False,
                properties=connect_properties(
                    session_expiry_s=self._session_expiry_s, receive_maximum=self._inbox.maxsize
                ),
            )
            session.client.loop_start()
        # The deadline moves on while SUBACKs keep coming: a partition subscribing tens of
        # thousands of device filters may take longer than `timeout_s` in all.
        deadline = time.monotonic() + timeout_s
        left = self._unanswered()
        while not self._ready(0.05):
            if self.refused is not None:
                self.stop()
                raise self.refused
            now_left = self._unanswered()
            if now_left < left:
                left, deadline = now_left, time.monotonic() + timeout_s
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"broker {self._address.url} did not accept us in {timeout_s} s")
        if self.refused is not None:
            self.stop()
            raise self.refused

    def _unanswered(self) -> int:
        with self._lock:
            return sum(len(s.pending) for s in self._sessions)

    def _ready(self, wait_s: float) -> bool:
        for session in self._sessions:
            wanted = session.subscribed if self._subscribe else session.connected
            if not wanted.wait(wait_s):
                return False
        return True

    def stop(self) -> None:
        """Disconnect and stop the network threads (one blocked on a full inbox lets go of
        its message, unacknowledged: the broker sends it again)."""
        self._closing = True
        for session in self._sessions:
            session.client.disconnect()
            session.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish QoS 1, not retained (contract §2), bounding outstanding message ids.

        Alerts leave on the urgent session, whose network thread never waits for a full
        telemetry lane.
        """
        if not self._slots.acquire(timeout=30):
            raise TimeoutError("too many unacknowledged alert publishes")
        info = self.urgent_client.publish(topic, payload, qos=1, retain=False)
        if info.rc == paho.MQTT_ERR_NO_CONN:
            # paho keeps a QoS 1 message it could not send and sends it once the session is
            # back (Client._messages_reconnect_reset_out): its slot is freed by that PUBACK.
            logger.warning("broker unreachable: alert on %s queued until it is back", topic)
        elif info.rc != paho.MQTT_ERR_SUCCESS:
            self._slots.release()
            logger.error("alert publish on %s not queued (rc %s)", topic, info.rc)

    def ack(self, mid: int, qos: int, urgent: bool = False) -> None:
        """Acknowledge a handled QoS 1 message on the session it came by (MQTT 5 §4.3.2)."""
        if qos > 0:
            self._sessions[1 if urgent else 0].client.ack(mid, qos)

    def ack_all(self, items: Iterable[Inbound]) -> None:
        """`ack` each of `items`, in order, one write per session (`gateway.mqtt.Client`)."""
        bulk: list[tuple[int, int]] = []
        urgent: list[tuple[int, int]] = []
        for item in items:
            if item.qos > 0:
                (urgent if item.urgent else bulk).append((item.mid, item.qos))
        for session, acks in zip(self._sessions, (bulk, urgent), strict=False):
            if acks:
                session.client.ack_all(acks)

    def _device_filter(self, device_id: str) -> str:
        topic = device_topic(device_id, Channel.TELEMETRY, self._prefix)
        return f"$share/{self._group}/{topic}" if self._group else topic

    def set_telemetry_devices(self, device_ids: Iterable[str], others: Iterable[str] = ()) -> None:
        """The devices whose telemetry this partition receives (per-device mode only).

        Subscribes the new ones and unsubscribes the ones no longer named, at once when
        connected (a registry reload), else on the next connect. A new device's telemetry
        from before its filter is in place is not seen here, as it was not before the
        reload (the engine did not know the device yet).

        Args:
            device_ids: this partition's telemetry senders.
            others: the other registered telemetry senders, unsubscribed on the next connect:
                a resumed broker session keeps filters of devices that moved to another
                partition while this process was down.
        """
        if not self._per_device:
            return
        wanted = set(device_ids)
        with self._lock:
            self._dropped.update(others)
            added = sorted(wanted - self._wanted)
            removed = sorted(self._wanted - wanted)
            self._wanted = wanted
            self._dropped.update(removed)
            self._dropped.difference_update(wanted)
            session = self._sessions[0]
            if not (self._subscribe and session.connected.is_set()):
                return
            # A dropped device leaves `_dropped` only when the broker confirms (UNSUBACK):
            # an UNSUBSCRIBE lost with the connection is sent again on the next connect.
            self._unsubscribe_devices(session, removed)
            self._send_subscribe(session, [self._device_filter(d) for d in added])

    def _unsubscribe_devices(self, session: _Session, device_ids: list[str]) -> None:
        at = 0
        for chunk in packets_of([self._device_filter(d) for d in device_ids]):
            rc, mid = session.client.unsubscribe(chunk)
            if rc == paho.MQTT_ERR_SUCCESS and mid is not None:
                session.unsubscribing[mid] = device_ids[at : at + len(chunk)]
            at += len(chunk)

    def _send_subscribe(self, session: _Session, filters: list[str]) -> None:
        # Retain Handling 1 (MQTT 5 §3.8.3.1): retained statuses are sent only when the
        # subscription is new, never again on a resumed session's re-subscribe.
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        for chunk in packets_of(filters):
            with self._lock:  # its SUBACK (`_on_subscribe`) waits until `pending` has it
                rc, mid = session.client.subscribe([(f, options) for f in chunk])
                if rc == paho.MQTT_ERR_SUCCESS and mid is not None:
                    session.pending[mid] = chunk

    def _on_connect(self, session: _Session, rc: ReasonCode) -> None:
        if rc.is_failure:
            logger.warning("broker refused the connection: %s", rc)
            return
        with self._lock:  # with `set_telemetry_devices`: no packet between the two
            session.pending.clear()
            session.unsubscribing.clear()
            session.connected.set()
        if not self._subscribe:
            return
        if session.urgent or not self._per_device:
            self._send_subscribe(session, session.filters)
            if not session.urgent:
                session.client.unsubscribe(self._legacy)
            return
        with self._lock:
            # Unsubscribe first: a broker handles a session's packets in order, so the last
            # SUBACK means the dropped filters are gone too. A resumed session keeps its
            # filters; subscribing them again is harmless and covers a session the broker lost.
            session.client.unsubscribe([self._legacy, self._wildcard])
            self._unsubscribe_devices(session, sorted(self._dropped))
            self._send_subscribe(session, [self._device_filter(d) for d in sorted(self._wanted)])
            if not session.pending:
                session.subscribed.set()  # no devices yet: nothing to wait for

    def _on_subscribe(self, session: _Session, mid: int, rcs: Any) -> None:
        with self._lock:
            filters = session.pending.pop(mid, session.filters)
            done = not session.pending
        for f, rc in zip(filters, rcs, strict=False):
            if rc.is_failure:
                code = rc.value if isinstance(rc, ReasonCode) else int(rc)
                self.refused = SubscriptionRefused(
                    f"broker {self._address.url} refused the subscription to {f!r}:"
                    f" reason code 0x{code:02X} ({rc})"
                )
                logger.error("%s", self.refused)
                return
        if done:
            session.subscribed.set()

    def _on_unsubscribe(self, session: _Session, mid: int) -> None:
        with self._lock:
            gone = session.unsubscribing.pop(mid, ())
            self._dropped.difference_update(gone)

    def _on_disconnect(self, session: _Session, rc: ReasonCode) -> None:
        session.connected.clear()
        if rc.is_failure:
            logger.warning("disconnected from the broker: %s; paho reconnects", rc)

    def _on_message(self, session: _Session, msg: paho.MQTTMessage) -> None:
        self._on_publish_fields(
            session, msg.topic, bytes(msg.payload), msg.qos, msg.mid, bool(msg.retain)
        )

    def _on_publish_fields(
        self, session: _Session, topic: str, payload: bytes, qos: int, mid: int, retain: bool
    ) -> None:
        if self._accept is not None and not self._accept(topic):
            self._put(Inbound(topic, b"", mid, qos, 0, False, session.urgent, True))
            return
        self._put(
            Inbound(topic, payload, mid, qos, int(time.time() * 1000), retain, session.urgent)
        )

    def _put(self, item: Inbound) -> None:
        # Blocks while the lane is full: paho stops reading and the broker keeps the rest.
        # Until `stop`: nothing may drain this inbox any more (a start-up that timed out), and
        # stopping joins this thread.
        while not self._closing:
            try:
                self._inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, rc: Any, props: Any = None
    ) -> None:
        try:
            self._slots.release()
        except ValueError:
            logger.debug("publish ack for mid %d without a slot", mid)
