"""Ingest and alerting held back by a full queue keep their broker sessions and every message.

Both services push back by not reading: a full queue blocks paho's network thread and the
broker holds the rest. A blocked network thread sends no PINGREQ, so with an MQTT keep alive
the broker drops the connection after 1.5 x the interval, and with it the QoS 0 telemetry
it had already queued for that connection (on a morning-peak replay of 100,000 elders ingest,
held back for over 45 s at the 30 s keep alive it had then, lost 132,860 of 629,843
messages). Real broker, shipped configuration.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from alerting.mqtt import AlertingMqtt, Inbox
from eldercare.broker import free_port, start_mosquitto, stop
from gateway.mqtt import TCP_KEEPIDLE_S, TCP_USER_TIMEOUT_MS, _ReadAhead
from gateway.topics import device_topic
from ingest.mqtt import Inbox as IngestInbox
from ingest.mqtt import Subscription
from ingest.settings import IngestSettings

pytestmark = pytest.mark.slow

# Longer than 1.5 x the 30 s keep alive both services announced before.
HOLD_S = 50.0
MESSAGES = 20_000


def _publish(port: int, topic: str, n: int) -> None:
    """`n` QoS 0 telemetry-sized payloads (about 1 kB, as a cane window) by a C publisher."""
    body = "{" + ",".join(f'"k{i}":{i}.125' for i in range(90)) + "}"
    lines = "".join(f'{{"n":{k},"pad":{body}}}\n' for k in range(n))
    subprocess.run(
        ["mosquitto_pub", "-p", str(port), "-q", "0", "-t", topic, "-l"],
        input=lines.encode(),
        check=True,
        timeout=60,
    )


def test_consumers_held_back_past_a_keepalive_lose_no_qos0_message(
    tmp_path: Path, topic_prefix: str
) -> None:
    port = free_port()
    broker = start_mosquitto(port, tmp_path / "mosquitto")
    url = f"mqtt://127.0.0.1:{port}"
    suffix = uuid.uuid4().hex[:8]
    out = IngestInbox(20)
    ingest = Subscription(
        IngestSettings(
            mqtt_url=url, topic_prefix=topic_prefix, share_group="", client_id=f"ing-{suffix}"
        ),
        out,
    )
    alerting = AlertingMqtt(
        url,
        f"alr-{suffix}",
        group="",
        prefix=topic_prefix,
        session_expiry_s=600,
        inbox=Inbox(20),
    )
    try:
        ingest.start()
        assert ingest.subscribed.wait(10)
        alerting.start(timeout_s=10)
        # A dead broker is found by TCP instead of MQTT keep alive.
        for client in (ingest._client, *alerting.clients):
            sock = client.socket()
            assert isinstance(sock, _ReadAhead)  # the socket, read ahead (gateway.mqtt)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == TCP_KEEPIDLE_S
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == (
                TCP_USER_TIMEOUT_MS
            )
        _publish(port, device_topic(f"cane-{suffix}", "telemetry", topic_prefix), MESSAGES)
        time.sleep(HOLD_S)  # nobody drains: both network threads are blocked
        got_ingest = got_alerting = 0
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 3.0:
            moved = False
            if taken := out.take(1000, 0):
                got_ingest += len(taken)
                moved = True
            while (item := alerting._inbox.get(timeout=0.01)) is not None:
                got_alerting += 1
                alerting.ack(item.mid, item.qos, item.urgent)
                moved = True
            if moved:
                quiet_since = time.monotonic()
        assert (got_ingest, got_alerting) == (MESSAGES, MESSAGES)
        assert ingest.connections == 1  # never dropped and reconnected
    finally:
        ingest.stop()
        alerting.stop()
        stop(broker)
