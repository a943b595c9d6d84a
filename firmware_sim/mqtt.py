"""MQTT transport of the simulator: many non-threaded paho clients on one selector (I/O only).

Two modes: one real connection per device, each with its own Last Will (the default), or
a pool of N shared connections for very large fleets, where the simulator publishes a
killed device's Will itself as the broker would.
"""

from __future__ import annotations

import logging
import random
import selectors
import time
import uuid
from collections import deque
from typing import Any

import paho.mqtt.client as paho

from gateway.mqtt import BrokerAddress, make_client

logger = logging.getLogger(__name__)

KEEPALIVE_S = 60
# Far below paho's 16-bit message-id space (65,535 outstanding QoS 1 publishes at most).
MAX_UNACKED = 1000
# Time spent opening connections per poll, so a large fleet ramps up in seconds
# while already-connected devices keep being serviced.
_CONNECT_BUDGET_S = 0.25


class Link:
    """One paho client driven by the transport's selector."""

    def __init__(
        self, client_id: str, address: BrokerAddress, will: tuple[str, bytes] | None
    ) -> None:
        """Build the client; `will` is (topic, payload), registered retained at QoS 1."""
        self.client = make_client(client_id, mqtt5=False, address=address)
        self.client.max_inflight_messages_set(MAX_UNACKED)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.address = address
        self.name = client_id
        self.backlog: deque[tuple[str, bytes, int, bool]] = deque()
        self.unacked: set[int] = set()
        self.connected = False
        self.last_status: tuple[str, bytes] | None = None
        self.retry_at = 0.0
        self.dead = False
        self.fd = -1
        self.backoff_s = 1.0
        self.sent = 0

    # paho callbacks: trivial, state flags only.
    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        self.connected = not rc.is_failure

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, rc: Any, props: Any
    ) -> None:
        self.unacked.discard(mid)

    def open(self) -> None:
        """Open the TCP connection and send CONNECT (CONNACK arrives via `read`).

        Raises:
            OSError: when the broker cannot be reached.
        """
        self.client.connect(self.address.host, self.address.port, keepalive=KEEPALIVE_S)

    def send(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Queue a publish; it goes out as soon as the link is up and under its QoS 1 limit."""
        if retain and topic.endswith("/status"):
            self.last_status = (topic, payload)
        self.backlog.append((topic, payload, qos, retain))

    def flush(self) -> int:
        """Hand queued publishes to paho while connected and under MAX_UNACKED; returns how many."""
        count = 0
        while self.connected and self.backlog and len(self.unacked) < MAX_UNACKED:
            topic, payload, qos, retain = self.backlog.popleft()
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
            self.sent += 1
            count += 1
            if qos:
                self.unacked.add(info.mid)
        return count


class Transport:
    """Connections for a fleet, in per-device or pooled mode, serviced by `poll`."""

    def __init__(
        self, address: BrokerAddress, wills: list[tuple[str, bytes]], pooled: int = 0
    ) -> None:
        """Prepare links; `wills[i]` is device i's Last Will; `pooled` > 0 shares that many."""
        self.address, self.wills, self.pooled = address, wills, pooled
        self.selector = selectors.DefaultSelector()
        self.links: dict[int, Link] = {}
        self.pool: list[Link] = []
        self.online: set[int] = set()
        self.sent = 0  # publishes handed to paho
        self._to_open: deque[Link] = deque()
        self._writers: set[Link] = set()
        self._all: list[Link] = []
        self._misc_cursor = 0
        self._last_misc = time.monotonic()
        run = uuid.uuid4().hex[:6]
        for k in range(pooled):
            link = Link(f"sim-pool-{run}-{k}", address, None)
            self.pool.append(link)
            self._to_open.append(link)

    def _link(self, device: int) -> Link:
        return self.pool[device % len(self.pool)] if self.pool else self.links[device]

    def preconnect(self, client_ids: list[str], timeout_s: float = 120.0) -> int:
        """Open every connection up front (device i uses `client_ids[i]`); returns how many are up.

        The devices only count as online once the simulation boots them (`connect`).
        """
        if not self.pool:
            for device, client_id in enumerate(client_ids):
                link = Link(client_id, self.address, self.wills[device])
                self.links[device] = link
                self._to_open.append(link)
        links = self.pool or list(self.links.values())
        deadline = time.monotonic() + timeout_s
        up = 0
        while time.monotonic() < deadline:
            self.poll(0.01)
            up = sum(link.connected for link in links)
            if up == len(links):
                break
        return up

    def connect(self, device: int, client_id: str) -> None:
        """Bring a device online (its own connection with its Will, or a pooled one)."""
        self.online.add(device)
        if self.pool:
            return
        existing = self.links.get(device)
        if existing is not None and not existing.dead:
            return
        link = Link(client_id, self.address, self.wills[device])
        self.links[device] = link
        self._to_open.append(link)

    def publish(self, device: int, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Publish for a device (buffered until its connection is up)."""
        link = self._link(device)
        link.send(topic, payload, qos, retain)
        self.sent += link.flush()
        self._writers.add(link)

    def kill(self, device: int) -> None:
        """Drop a device without DISCONNECT, so its Will is published."""
        self.online.discard(device)
        if self.pool:
            topic, payload = self.wills[device]
            self.publish(device, topic, payload, 1, True)
            return
        link = self.links.pop(device, None)
        if link is None:
            return
        link.dead = True
        self._unregister(link)
        if link in self._all:
            self._all.remove(link)
        sock = link.client.socket()
        if sock is not None:
            sock.close()  # no DISCONNECT packet: the broker publishes the Will (MQTT 3.1.2.5)
        self._writers.discard(link)

    def _unregister(self, link: Link) -> None:
        # By descriptor number: paho may already have closed the socket object.
        if link.fd < 0:
            return
        try:
            self.selector.unregister(link.fd)
        except (KeyError, ValueError):
            logger.debug("descriptor %d was not registered", link.fd)
        link.fd = -1

    def _open_some(self) -> None:
        now = time.monotonic()
        for _ in range(len(self._to_open)):
            if time.monotonic() - now > _CONNECT_BUDGET_S:
                break
            link = self._to_open.popleft()
            if link.dead:
                continue
            if link.retry_at > now:
                self._to_open.append(link)
                continue
            try:
                link.open()
            except OSError as exc:
                logger.warning("connect failed (%s); retrying in %.1f s", exc, link.backoff_s)
                self._retry_later(link)
                continue
            sock = link.client.socket()
            if sock is None:
                self._retry_later(link)
                continue
            link.fd = sock.fileno()
            self._evict_stale(link)
            self.selector.register(link.fd, selectors.EVENT_READ, link)
            self._all.append(link)

    def _evict_stale(self, link: Link) -> None:
        # paho closes a socket itself on some errors; the OS may then hand the same descriptor
        # number to the next connection while the old link is still registered under it.
        try:
            stale: Link = self.selector.get_key(link.fd).data
        except KeyError:
            return
        self.selector.unregister(link.fd)
        if stale is not link:
            stale.fd = -1
            self._dropped(stale)
        elif link in self._all:
            self._all.remove(link)

    def _retry_later(self, link: Link) -> None:
        # Jittered exponential backoff (STYLE.md "Errors" 3).
        link.retry_at = time.monotonic() + link.backoff_s * random.uniform(0.5, 1.5)
        link.backoff_s = min(link.backoff_s * 2, 30.0)
        link.connected = False
        self._to_open.append(link)

    def _dropped(self, link: Link) -> None:
        self._unregister(link)
        if link in self._all:
            self._all.remove(link)
        if link.dead:
            return
        logger.warning("connection %s dropped; reconnecting", link.name)
        if link.last_status is not None:
            link.backlog.appendleft((*link.last_status, 1, True))
        self._retry_later(link)

    def poll(self, timeout_s: float) -> None:
        """Connect pending links, service reads and writes, keepalives; waits at most timeout_s."""
        self._open_some()
        for key, mask in self.selector.select(timeout=max(0.0, timeout_s)):
            link: Link = key.data
            if mask & selectors.EVENT_READ and link.client.loop_read(100) != paho.MQTT_ERR_SUCCESS:
                self._dropped(link)
                continue
            self.sent += link.flush()
            self._writers.add(link)
        for link in list(self._writers):
            if link.client.want_write() and link.client.loop_write() != paho.MQTT_ERR_SUCCESS:
                self._dropped(link)
            if not link.client.want_write() and not link.backlog:
                self._writers.discard(link)
        self._misc()

    def _misc(self) -> None:
        now = time.monotonic()
        if now - self._last_misc < 1.0 or not self._all:
            return
        self._last_misc = now
        # Each link gets loop_misc (keepalive PINGREQ) about every 10 s.
        chunk = max(1, len(self._all) // 10)
        for _ in range(min(chunk, len(self._all))):
            self._misc_cursor = (self._misc_cursor + 1) % len(self._all)
            link = self._all[self._misc_cursor]
            if link.client.loop_misc() != paho.MQTT_ERR_SUCCESS:
                self._dropped(link)

    @property
    def connected_devices(self) -> int:
        """Devices online whose connection has its CONNACK."""
        if self.pool:
            return len(self.online) if all(link.connected for link in self.pool) else 0
        return sum(1 for d in self.online if self.links[d].connected)

    @property
    def pending(self) -> int:
        """Publishes not yet handed to the socket (backlogs plus unacknowledged QoS 1)."""
        links = self.pool or list(self.links.values())
        return sum(
            len(link.backlog) + len(link.unacked) + link.client.want_write() for link in links
        )

    def close(self) -> None:
        """Disconnect every link cleanly (no Wills), flushing what can be flushed."""
        deadline = time.monotonic() + 5.0
        while self.pending and time.monotonic() < deadline:
            self.poll(0.02)
        for link in self.pool or list(self.links.values()):
            sock = link.client.socket()
            if sock is None:
                continue
            self._unregister(link)
            link.client.disconnect()
            link.client.loop_write()
            sock.close()
        self.selector.close()
