"""paho-mqtt client construction shared by every MQTT adapter (I/O only)."""

from __future__ import annotations

import logging
import socket
import struct
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import SecretStr

from gateway.settings import MqttAuthSettings

logger = logging.getLogger(__name__)

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"

# Consuming services (ingest, alerting) push back by not reading: a full queue blocks paho's
# network thread and the broker holds the rest. A blocked network thread sends no PINGREQ,
# so with an MQTT keep alive the broker drops the connection after 1.5 x the interval, and
# Mosquitto drops with it the QoS 0 messages it had queued for that connection (measured:
# 19,891 of 20,000 lost after a 50 s hold with a 30 s keep alive,
# tests/gateway/test_held_back_consumers.py). So they connect with keep alive off (MQTT 5
# §3.1.2.10; Mosquitto then answers with its `max_keepalive`, 65535 s by default, as Server
# Keep Alive) and find a dead broker by TCP instead, which the kernel does whatever the
# process is doing: keepalive probes after 10 s idle, every 5 s, 3 missed, and unacknowledged
# data given up after 30 s (TCP_USER_TIMEOUT), as ingest/pg.py does for PostgreSQL.
CONSUMER_KEEPALIVE_S = 0
TCP_KEEPIDLE_S = 10
TCP_KEEPINTVL_S = 5
TCP_KEEPCNT = 3
TCP_USER_TIMEOUT_MS = 30_000


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker listens and how to log in."""

    host: str
    port: int
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False

    @property
    def url(self) -> str:
        """The address back as an `mqtt://` (or `mqtts://`) URL, password left out."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> BrokerAddress:
    """Parse `mqtt://[user[:password]@]host[:port]` (also `tcp://`, and `mqtts://` for TLS).

    Raises:
        ValueError: for another scheme or a missing host.
    """
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parts.hostname:
        # The URL may carry a password: never echo it back.
        raise ValueError("not an mqtt://host:port URL")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=SecretStr(unquote(parts.password)) if parts.password else None,
        tls=tls,
    )


def _nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    # STYLE.md: paho leaves Nagle on, which costs ~10 ms per message at low rates.
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        logger.debug("TCP_NODELAY not set on %r", sock)


def _consumer_socket(client: paho.Client, userdata: Any, sock: Any) -> None:
    _nodelay(client, userdata, sock)
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (
        ("TCP_KEEPIDLE", TCP_KEEPIDLE_S),
        ("TCP_KEEPINTVL", TCP_KEEPINTVL_S),
        ("TCP_KEEPCNT", TCP_KEEPCNT),
        ("TCP_USER_TIMEOUT", TCP_USER_TIMEOUT_MS),
    ):
        if hasattr(socket, name):  # Linux; other systems keep their defaults
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    try:
        for level, option, value in options:
            sock.setsockopt(level, option, value)
    except OSError:
        logger.warning("TCP keepalive not set on the broker connection %r", sock)


_PUBACK = struct.Struct("!BBH")
PUBLISH = PacketTypes.PUBLISH << 4  # first byte of a PUBLISH, flags aside (MQTT 5 §3.3.1)
# Packets handled per `Client.loop_read` call from what was read ahead.
READ_BATCH = 1000


class _Properties(Properties):
    """paho's MQTT 5 `Properties`, built without rebuilding its lookup tables.

    paho decodes every PUBLISH into a new `Properties`, whose constructor builds three
    tables (27 names, 27 identifiers, 7 types) and whose `unpack` first clears each of the 27
    names (a string replace and a `hasattr` each): 40 % of the receive path's CPU in a
    profile of 30,000 band fixes (docs/scaling.md "paho's receive path"). The tables are only
    read, so every instance here shares one set; `clear` deletes the properties actually
    set. Decoded properties are the same (tests/gateway/test_mqtt_receive.py).
    """

    _TABLES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    _PRIVATE = frozenset(("packetType", "types", "names", "properties"))

    def __init__(self, packetType: int) -> None:
        state = self.__dict__
        state["packetType"] = packetType
        state["types"] = self._TABLES.types
        state["names"] = self._TABLES.names
        state["properties"] = self._TABLES.properties

    def clear(self) -> None:
        """Delete every property set (paho's `clear`, over the properties present only)."""
        for name in [n for n in self.__dict__ if n not in self._PRIVATE]:
            delattr(self, name)


def _share_property_tables() -> None:
    """Decode received packets with `_Properties` (paho 2.2+ decodes them in `_packet`)."""
    try:
        from paho.mqtt import _packet
    except ImportError:  # an older paho: its own Properties, unchanged
        return
    if getattr(_packet, "Properties", None) is Properties:
        setattr(_packet, "Properties", _Properties)  # noqa: B010 (not an exported name)


_share_property_tables()


class _ReadAhead:
    """A plain TCP socket read 256 KiB at a time, for paho.

    paho reads every packet with three or more `recv` calls (the command byte, each byte of
    the remaining length, then the rest) and, with nothing in flight outward, one packet per
    `select`: at a few thousand QoS 1 messages/s that is several system calls per message.
    This serves those `recv` calls from one large read and reports what it holds as
    `pending()`, the method paho already asks of a TLS socket (it then skips `select`).
    Everything else is the socket's own.
    """

    __slots__ = ("_buf", "_pos", "_sock")

    _CHUNK = 256 * 1024

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        """Up to `bufsize` bytes: from what was read ahead, else one read of the socket.

        Raises:
            BlockingIOError: nothing read ahead and nothing in the socket (non-blocking).
            OSError: as `socket.recv`.
        """
        if self._pos >= len(self._buf):
            data = self._sock.recv(self._CHUNK)
            if not data:
                return data
            self._buf, self._pos = data, 0
        start = self._pos
        self._pos = min(start + bufsize, len(self._buf))
        return self._buf[start : self._pos]

    def pending(self) -> int:
        """Bytes read ahead and not yet taken."""
        return len(self._buf) - self._pos

    def take_packet(self) -> tuple[int, bytes] | None:
        """The next MQTT control packet, when all of it was read ahead: (its first byte, the
        bytes after its Remaining Length, MQTT 5 §2.1.4). None when the buffer ends inside a
        packet or its Remaining Length is malformed; paho then reads it its own way."""
        buf, start = self._buf, self._pos
        end, i, length, shift = len(buf), start + 1, 0, 0
        while True:
            if i >= end or shift > 21:
                return None
            byte = buf[i]
            length |= (byte & 0x7F) << shift
            i += 1
            if byte < 0x80:
                break
            shift += 7
        if i + length > end:
            return None
        self._pos = i + length
        return buf[start], buf[i : i + length]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _in_packet(command: int, body: bytes | bytearray) -> Any:
    """paho's incoming-packet state (`Client._in_packet`): a whole packet read when `command`
    is set (its body is all of `body`), or the empty state paho starts each packet from."""
    return {
        "command": command,
        "have_remaining": 1 if command else 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": len(body),
        "packet": body,  # paho's decoders read bytes as they read a bytearray
        "to_process": 0,
        "pos": 0,
    }


class Client(paho.Client):
    """paho's client reading plain TCP connections ahead (`_ReadAhead`) and handling every
    packet read ahead before it waits again. TLS and WebSocket connections are paho's own
    (OpenSSL already reads whole records).

    Measured by `python bench/bench_ingest.py` ("paho-mqtt alone"): see docs/scaling.md.
    """

    # Called on the network thread after each read batch (see `loop_read`), also when it ends
    # in an exception: a consumer's `on_message` may collect messages and hand them over here,
    # once per batch instead of once per message.
    on_read_batch: Callable[[], None] | None = None
    # When set, called on the network thread instead of `on_message` for each QoS 0 or 1
    # PUBLISH with no properties (see `_handle_publish`) as (topic, payload, qos, mid, retain);
    # every other PUBLISH still goes to `on_message`.
    on_plain_publish: Callable[[str, bytes, int, int, bool], None] | None = None

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        return _ReadAhead(sock) if type(sock) is socket.socket else sock

    def _packet_read(self) -> MQTTErrorCode:
        # A packet read ahead whole is handled at once; paho's own reading takes three or
        # more `recv` calls for it (command byte, each Remaining Length byte, the rest).
        sock = self._sock
        if type(sock) is not _ReadAhead or self._in_packet["command"] != 0:
            return super()._packet_read()
        packet = sock.take_packet()
        if packet is None:
            return super()._packet_read()
        command, body = packet
        rc = self._plain_publish(command, body) if command & 0xF0 == PUBLISH else None
        if rc is None:
            self._in_packet = _in_packet(command, body)
            try:
                rc = self._packet_handle()
            except MalformedPacket as exc:
                self._easy_log(paho.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
                rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
            self._in_packet = _in_packet(0, bytearray(b""))  # as paho leaves it after a packet
        with self._msgtime_mutex:
            self._last_bytes_received = paho.time_func()
        return rc

    # Set once a per-topic callback is added (paho's matcher has no cheap emptiness test).
    _per_topic_callbacks = False

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._per_topic_callbacks = True
        super().message_callback_add(sub, callback)

    def _handle_publish(self) -> MQTTErrorCode:
        rc = self._plain_publish(self._in_packet["command"], self._in_packet["packet"])
        return super()._handle_publish() if rc is None else rc

    def _plain_publish(self, command: int, body: bytes | bytearray) -> MQTTErrorCode | None:
        """A QoS 0 or 1 PUBLISH without properties handed to `on_plain_publish`; None when it
        is left to paho's `_handle_publish` (unchanged, nothing consumed).

        paho builds an `MQTTMessage` per PUBLISH (with a `threading.Condition` in its
        `MQTTMessageInfo`), decodes its topic four times and matches it against the per-topic
        callbacks: most of the network thread's time per band fix (docs/scaling.md, "PUBLISH
        packets without properties handed over directly"). A PUBLISH with Property Length 0
        (MQTT 5 §3.3.2.3) needs none of that: its Topic Name, Packet Identifier and payload
        are read here (§3.3.2).
        Left to paho: no `on_plain_publish`, QoS 2 (and 3, malformed: paho drops the
        connection, §3.3.1.2), MQTT 3, per-topic callbacks, an empty
        topic (a Topic Alias), properties, a topic not UTF-8, Packet Identifier 0, a packet
        shorter than its fields (paho reports it malformed).
        """
        fast = self.on_plain_publish
        qos = (command >> 1) & 0x03
        if fast is None or qos & 0x02 or self._protocol != paho.MQTTv5 or self._per_topic_callbacks:
            return None
        end = len(body)
        if end < 3:
            return None
        topic_end = 2 + ((body[0] << 8) | body[1])
        pos = topic_end + 2 if qos else topic_end
        if topic_end == 2 or pos >= end or body[pos] != 0:
            return None
        mid = (body[topic_end] << 8) | body[topic_end + 1] if qos else 0
        if qos and mid == 0:
            return None
        try:
            topic = str(body[2:topic_end], "utf-8")
        except UnicodeDecodeError:
            return None
        payload = body[pos + 1 :]
        with self._in_callback_mutex:
            try:
                fast(
                    topic,
                    payload if type(payload) is bytes else bytes(payload),
                    qos,
                    mid,
                    bool(command & 0x01),
                )
            except Exception as err:
                self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_plain_publish: %s", err)
                if not self.suppress_exceptions:
                    raise
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's `loop_read`, repeated while packets read ahead remain, up to `READ_BATCH`
        packets and never while something waits to be written: PUBACKs, alerts and a
        DISCONNECT go out between batches, and paho's loop checks keep alive and `loop_stop`
        (a backlog keeps a read-ahead buffer full, so the loop would otherwise not end).
        Then `on_read_batch`, if set."""
        try:
            rc = super().loop_read(max_packets)
            sock = self._sock
            for _ in range(READ_BATCH):
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self.want_write():
                    break
                if self._sock is not sock or not isinstance(sock, _ReadAhead) or not sock.pending():
                    break  # disconnected or reconnected in a callback, or nothing read ahead
                rc = super().loop_read(1)
            return rc
        finally:
            if self.on_read_batch is not None:
                self.on_read_batch()

    def ack_all(self, acks: Iterable[tuple[int, int]]) -> MQTTErrorCode:
        """Acknowledge messages as `ack` does, given as (mid, qos): the QoS 1 ones in one write.

        paho's `ack` queues one PUBACK packet per message and wakes its network thread for
        each (a write to its socket pair), then sends each in its own `send`; a consumer that
        acknowledges a committed batch of thousands pays that per message. Here the PUBACKs
        of the batch go out as one buffer: each is the four bytes `_send_command_with_mid`
        builds (MQTT 5 §3.4.2.1: reason code 0 with no properties may be left out).
        Nothing is sent unless the client was made with `manual_ack`.
        """
        if not self._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        packet = bytearray()
        for mid, qos in acks:
            if qos == 1:
                packet += _PUBACK.pack(PacketTypes.PUBACK << 4, 2, mid)
            elif qos == 2:
                self.ack(mid, qos)
        if not packet:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._packet_queue(PacketTypes.PUBACK << 4, bytes(packet), 0, 0)


def make_client(
    client_id: str | None = None,
    *,
    mqtt5: bool = True,
    manual_ack: bool = False,
    address: BrokerAddress | None = None,
    consumer: bool = False,
) -> Client:
    """Build a paho client with TCP_NODELAY, backoff reconnect and credentials.

    Args:
        client_id: the MQTT client id (a random one when None).
        mqtt5: MQTT 5 when true, else 3.1.1.
        manual_ack: acknowledge QoS 1 messages only when `client.ack` is called.
        address: for the username and password, if any.
        consumer: a service that may stop reading for a long time (see
            `CONSUMER_KEEPALIVE_S`): TCP keepalive and user timeout on its socket; connect it
            with `keepalive=CONSUMER_KEEPALIVE_S`.
    """
    client = Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"eldercare-{uuid.uuid4().hex[:12]}",
        protocol=MQTTProtocolVersion.MQTTv5 if mqtt5 else MQTTProtocolVersion.MQTTv311,
        manual_ack=manual_ack,
    )
    client.on_socket_open = _consumer_socket if consumer else _nodelay
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    apply_login(client, address, MqttAuthSettings())
    return client


def apply_login(client: paho.Client, address: BrokerAddress | None, auth: MqttAuthSettings) -> None:
    """Set the username, password and TLS of `client` before it connects.

    A username in the URL wins; otherwise `MQTT_USERNAME` with `MQTT_PASSWORD_FILE` or
    `MQTT_PASSWORD`. TLS is on for an `mqtts://` URL or when `MQTT_CA_FILE` is set; the
    broker's certificate must chain to that CA (or the system's when none is given).
    """
    if address is not None and address.username:
        secret = address.password
        client.username_pw_set(address.username, secret.get_secret_value() if secret else None)
    elif auth.username:
        secret = auth.secret()
        client.username_pw_set(auth.username, secret.get_secret_value() if secret else None)
    if (address is not None and address.tls) or auth.ca_file is not None:
        client.tls_set(
            ca_certs=str(auth.ca_file) if auth.ca_file else None,
            certfile=str(auth.cert_file) if auth.cert_file else None,
            keyfile=str(auth.key_file) if auth.key_file else None,
        )


def connect_properties(
    session_expiry_s: int | None = None, receive_maximum: int | None = None
) -> Properties:
    """CONNECT properties for an MQTT 5 session (MQTT 5 §3.1.2.11)."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if session_expiry_s is not None:
        props.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return props
