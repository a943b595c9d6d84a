"""paho-mqtt client construction shared by every MQTT adapter (I/O only)."""

from __future__ import annotations

import logging
import socket
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
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


def make_client(
    client_id: str | None = None,
    *,
    mqtt5: bool = True,
    manual_ack: bool = False,
    address: BrokerAddress | None = None,
    consumer: bool = False,
) -> paho.Client:
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
    client = paho.Client(
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
