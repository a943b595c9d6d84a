"""A broker that hangs (its process stopped, its sockets still open): alerting must notice.

TCP keepalive cannot tell: the broker's kernel answers the probes. The urgent session's MQTT
keep alive can: no PINGRESP comes, paho closes the connection, alerting reports itself not
ready, and it is back within seconds of the broker, however long the hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from eldercare.broker import free_port
from gateway import AlertKind, DeviceType, Event, encode_message
from tests.alerting.helpers import (
    prepare_db,
    private_broker,
    running,
    settings_for,
    small_fleet,
    wait_until,
)


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.slow
def test_a_hung_broker_makes_alerting_unready_and_an_sos_gets_through_once_it_resumes(
    tmp_path: Path, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    metrics_port = free_port()
    with private_broker(tmp_path) as broker:
        settings = settings_for(
            broker.url,
            schema_url,
            topic_prefix,
            share_group="",
            urgent_keepalive_s=1,
            metrics_port=metrics_port,
        )
        pid = broker.proc.pid
        try:
            with running(settings) as service:
                mqtt = service.mqtt
                assert mqtt is not None and mqtt.connected
                assert _readyz(metrics_port) == 200
                os.kill(pid, signal.SIGSTOP)
                hung = time.monotonic()
                # paho pings after 1 s without traffic, gives up 1 s after an unanswered ping.
                noticed_s = wait_until(lambda: not mqtt.connected, 10, "disconnected")
                assert noticed_s < 5
                assert _readyz(metrics_port) == 503
                # Long enough for a doubling reconnect delay to have grown to 16-30 s.
                time.sleep(max(0.0, 40 - (time.monotonic() - hung)))
                os.kill(pid, signal.SIGCONT)
                resumed = time.monotonic()
                # The press from a client this project did not write: mosquitto_pub, QoS 1.
                press = Event(
                    device_id=f"btn-{device_suffix}",
                    type=DeviceType.BUTTON,
                    seq=1,
                    ts=int(time.time() * 1000),
                    event="press",
                )
                topic, payload = encode_message(press, topic_prefix)
                cmd = ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", topic, "-s"]
                subprocess.run(cmd, input=payload, check=True, timeout=30)
                wait_until(lambda: service.raised(), 40, "the SOS")
                # The urgent session retries at most URGENT_RECONNECT_MAX_S apart.
                assert time.monotonic() - resumed < 8
                assert [a.kind for a in service.raised()] == [AlertKind.SOS]
                assert mqtt.connected and _readyz(metrics_port) == 200
        finally:
            os.kill(pid, signal.SIGCONT)
