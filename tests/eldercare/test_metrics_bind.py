"""Metrics and health listeners answer on loopback by default and not on this machine's
network addresses; 0.0.0.0 (docker-compose.yml's, for a scraper on the compose network) opens
them."""

from __future__ import annotations

import fcntl
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from alerting.metrics import AlertingMetrics, LiveState
from alerting.notify.metrics import NotifyMetrics
from alerting.notify.service import Notifier
from alerting.notify.settings import NotifySettings
from alerting.settings import AlertingSettings
from ingest.db import connect
from ingest.metrics import IngestMetrics
from ingest.migrate import apply_migrations
from ingest.settings import IngestSettings
from tests.ingest.conftest import running, settings_for


def _network_address() -> str:
    """A non-loopback IPv4 address of this machine (e.g. eth0's); skips when there is none."""
    siocgifaddr = 0x8915  # Linux ioctl: an interface's IPv4 address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                req = struct.pack("256s", name[:15].encode())
                addr = socket.inet_ntoa(fcntl.ioctl(sock.fileno(), siocgifaddr, req)[20:24])
            except OSError:
                continue  # no IPv4 address on this interface
            if not addr.startswith("127."):
                return addr
    pytest.skip("this machine has no non-loopback IPv4 address")


def _answers(host: str, port: int, path: str) -> bool:
    """True when an HTTP GET of http://host:port/path gets any HTTP answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=3):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP status (e.g. 503 from /readyz) is still an answer
    except OSError:
        return False


def _state() -> LiveState:
    return LiveState(0, 0, True, True, True, True, 0.0, 0.0, 0.0, 0)


def test_defaults_are_loopback() -> None:
    assert IngestSettings().metrics_host == "127.0.0.1"
    assert AlertingSettings().metrics_host == "127.0.0.1"
    assert NotifySettings().metrics_host == "127.0.0.1"


def test_settings_read_the_host_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_METRICS_HOST", "0.0.0.0")
    monkeypatch.setenv("ALERTING_METRICS_HOST", "0.0.0.0")
    monkeypatch.setenv("NOTIFY_METRICS_HOST", "0.0.0.0")
    assert IngestSettings().metrics_host == "0.0.0.0"
    assert AlertingSettings().metrics_host == "0.0.0.0"
    assert NotifySettings().metrics_host == "0.0.0.0"


def test_alerting_listener_default_is_loopback_only() -> None:
    outside = _network_address()
    metrics = AlertingMetrics()
    port = metrics.serve(0, _state, host=AlertingSettings().metrics_host)
    try:
        assert _answers("127.0.0.1", port, "/healthz")
        assert _answers("127.0.0.1", port, "/metrics")
        assert not _answers(outside, port, "/healthz"), f"/healthz answers on {outside}"
        assert not _answers(outside, port, "/metrics"), f"/metrics answers on {outside}"
    finally:
        metrics.close()


def test_alerting_listener_on_every_interface_when_asked() -> None:
    outside = _network_address()
    metrics = AlertingMetrics()
    port = metrics.serve(0, _state, host="0.0.0.0")
    try:
        assert _answers(outside, port, "/healthz")
    finally:
        metrics.close()


def test_ingest_metrics_default_is_loopback_only() -> None:
    outside = _network_address()
    metrics = IngestMetrics()
    port = metrics.serve(0, IngestSettings().metrics_host)
    try:
        assert _answers("127.0.0.1", port, "/metrics")
        assert not _answers(outside, port, "/metrics"), f"/metrics answers on {outside}"
    finally:
        metrics.close()
    assert not _answers("127.0.0.1", port, "/metrics"), "still served after close()"


def test_ingest_metrics_on_every_interface_when_asked() -> None:
    outside = _network_address()
    metrics = IngestMetrics()
    port = metrics.serve(0, "0.0.0.0")
    try:
        assert _answers(outside, port, "/metrics")
    finally:
        metrics.close()


def test_ingest_service_serves_metrics_on_loopback_only(
    schema_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    outside = _network_address()
    with connect(schema_url) as conn:
        apply_migrations(conn)
    settings = settings_for(schema_url, mqtt_url, topic_prefix, metrics_port=0)
    with running(settings) as service:
        port = service.metrics.port
        assert port
        assert _answers("127.0.0.1", port, "/metrics")
        assert _status(port, "/healthz") == 200
        assert _status(port, "/readyz") == 200
        assert _status(port, "/nowhere") == 404
        assert not _answers(outside, port, "/metrics"), f"/metrics answers on {outside}"
    assert not _answers("127.0.0.1", port, "/metrics"), "still served after the service stopped"


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_notify_listener_default_is_loopback_only() -> None:
    outside = _network_address()
    metrics = NotifyMetrics()
    port = metrics.serve(0, NotifySettings().metrics_host)
    try:
        assert _answers("127.0.0.1", port, "/healthz")
        assert not _answers(outside, port, "/healthz"), f"/healthz answers on {outside}"
        assert not _answers(outside, port, "/metrics"), f"/metrics answers on {outside}"
    finally:
        metrics.close()


def test_notify_health_follows_its_loops() -> None:
    now = [0.0]
    metrics = NotifyMetrics(monotonic=lambda: now[0])
    port = metrics.serve(0, live_within_s=60.0)
    try:
        assert _status(port, "/healthz") == 200  # young process
        assert _status(port, "/readyz") == 503  # no loop connected yet
        metrics.beat("plan")
        metrics.beat("send")
        assert _status(port, "/readyz") == 200
        now[0] = 30.0
        metrics.beat("send", database_up=False)  # the sender lost the database
        assert _status(port, "/readyz") == 503
        assert _status(port, "/healthz") == 200
        now[0] = 61.0  # the planner has not gone round for 61 s
        assert _status(port, "/healthz") == 503
        assert _status(port, "/nowhere") == 404
    finally:
        metrics.close()


def test_notify_service_serves_health_on_loopback_only(schema_url: str, tmp_path: Path) -> None:
    outside = _network_address()
    with connect(schema_url) as conn:
        apply_migrations(conn)
    settings = NotifySettings(
        database_url=schema_url,
        vapid_key_path=tmp_path / "vapid.pem",
        poll_s=0.2,
        metrics_port=0,
    )
    notifier = Notifier(settings)
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while notifier.metrics.port is None and time.monotonic() < deadline:
            time.sleep(0.05)
        port = notifier.metrics.port
        assert port is not None
        while _status(port, "/readyz") != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _status(port, "/readyz") == 200
        assert _status(port, "/healthz") == 200
        assert not _answers(outside, port, "/healthz"), f"/healthz answers on {outside}"
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert not _answers("127.0.0.1", port, "/healthz"), "still served after the notifier stopped"


def test_ingest_health_answers_what_the_service_reports() -> None:
    state = [(True, False)]
    metrics = IngestMetrics()
    port = metrics.serve(0, health=lambda: state[0])
    try:
        assert _status(port, "/healthz") == 200
        assert _status(port, "/readyz") == 503
        state[0] = (False, True)
        assert _status(port, "/healthz") == 503
        assert _status(port, "/readyz") == 200
    finally:
        metrics.close()
