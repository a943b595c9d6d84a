"""A broker that hangs (its process stopped, its sockets still open): alerting must notice.

TCP keepalive cannot tell: the broker's kernel answers the probes. The urgent session's MQTT
keep alive can: no PINGRESP comes, paho closes the connection, alerting reports itself not
ready, and it is back within seconds of the broker, however long the hang.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from eldercare.broker import free_port, start_mosquitto, stop
from gateway import AlertKind, DeviceType, Event
from tests.alerting.helpers import DevicePublisher, prepare_db, running, settings_for, small_fleet


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _wait(predicate: object, timeout_s: float) -> float:
    """Seconds until `predicate()` held (AssertionError after `timeout_s`)."""
    t0 = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - t0 < timeout_s, f"not within {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - t0


@pytest.mark.slow
def test_a_hung_broker_makes_alerting_unready_and_an_sos_gets_through_once_it_resumes(
    tmp_path: Path, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    port = free_port()
    proc = start_mosquitto(port, tmp_path / "mosquitto")
    url = f"mqtt://127.0.0.1:{port}"
    prepare_db(schema_url, small_fleet(device_suffix))
    metrics_port = free_port()
    settings = settings_for(
        url,
        schema_url,
        topic_prefix,
        share_group="",
        urgent_keepalive_s=1,
        metrics_port=metrics_port,
    )
    try:
        with running(settings) as service:
            mqtt = service.mqtt
            assert mqtt is not None and mqtt.connected
            assert _readyz(metrics_port) == 200
            os.kill(proc.pid, signal.SIGSTOP)
            hung = time.monotonic()
            # paho pings after 1 s without traffic and gives up 1 s after an unanswered ping.
            noticed_s = _wait(lambda: not mqtt.connected, 10)
            assert noticed_s < 5
            assert _readyz(metrics_port) == 503
            # Long enough for a doubling reconnect delay to have grown to 16-30 s.
            time.sleep(max(0.0, 40 - (time.monotonic() - hung)))
            os.kill(proc.pid, signal.SIGCONT)
            resumed = time.monotonic()
            devices = DevicePublisher(url, topic_prefix)
            press = Event(
                device_id=f"btn-{device_suffix}",
                type=DeviceType.BUTTON,
                seq=1,
                ts=int(time.time() * 1000),
                event="press",
            )
            devices.send(press)
            _wait(lambda: service.raised(), 40)
            # The urgent session retries at most URGENT_RECONNECT_MAX_S apart.
            assert time.monotonic() - resumed < 8
            devices.close()
            assert [a.kind for a in service.raised()] == [AlertKind.SOS]
            assert mqtt.connected and _readyz(metrics_port) == 200
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        stop(proc)
