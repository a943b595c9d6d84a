"""Shared helpers of the alerting tests: a fleet, a running service, an alert listener."""

from __future__ import annotations

import contextlib
import queue
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from paho.mqtt.client import Client, MQTTMessage

from alerting.service import AlertingService
from alerting.settings import AlertingSettings
from eldercare.broker import free_port, start_mosquitto, stop
from gateway import (
    AlertMessage,
    BandTelemetry,
    DeviceType,
    Fleet,
    Message,
    decode_alert,
    encode_message,
    parse_fleet,
)
from gateway.mqtt import make_client, parse_mqtt_url
from gateway.topics import alert_filter
from ingest.migrate import apply_migrations
from ingest.registry import import_fleet

HOME = (39.9300, 116.3700)


@dataclass(frozen=True)
class PrivateBroker:
    """A Mosquitto of one test alone (the shipped configuration)."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


@contextmanager
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """Start a Mosquitto with the shipped configuration on a free port; stop it after."""
    port = free_port()
    proc = start_mosquitto(port, tmp_path / "mosquitto")
    try:
        yield PrivateBroker(proc, port)
    finally:
        stop(proc)


def wait_until(pred: Callable[[], object], timeout_s: float, what: str = "") -> float:
    """Seconds until `pred()` is true, polled every 50 ms (AssertionError after `timeout_s`)."""
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout_s, f"timed out after {timeout_s} s: {what}"
        time.sleep(0.05)
    return time.monotonic() - t0


def home_fix(
    device_id: str, seq: int, ts: int, *, steps: int | None = None, hr_bpm: int | None = None
) -> BandTelemetry:
    """A band's fix at `HOME` (8 m accuracy), worn when it carries a heart rate."""
    return BandTelemetry(
        device_id=device_id,
        type=DeviceType.BAND,
        seq=seq,
        ts=ts,
        lat=HOME[0],
        lon=HOME[1],
        hacc_m=8.0,
        steps=steps,
        hr_bpm=hr_bpm,
        worn=True if hr_bpm is not None else None,
    )


def small_fleet(suffix: str, *, heartbeat_s: int = 300) -> Fleet:
    """Two centres, one elder with a button, a band, a cane and a smoke detector."""
    return parse_fleet(
        {
            "care_centers": [
                {
                    "id": f"cc-a-{suffix}",
                    "name": "A",
                    "lat": 39.9310,
                    "lon": 116.3710,
                    "capacity": 3,
                    "coverage_km2": 1.0,
                },
                {
                    "id": f"cc-b-{suffix}",
                    "name": "B",
                    "lat": 39.9500,
                    "lon": 116.3900,
                    "capacity": 3,
                    "coverage_km2": 1.0,
                },
            ],
            "elders": [
                {
                    "id": f"el-{suffix}",
                    "name": "Test Elder",
                    "home_lat": HOME[0],
                    "home_lon": HOME[1],
                    "safe_radius_m": 300,
                }
            ],
            "devices": [
                {
                    "id": f"btn-{suffix}",
                    "type": "button",
                    "elder_id": f"el-{suffix}",
                    "heartbeat_s": heartbeat_s,
                },
                {
                    "id": f"band-{suffix}",
                    "type": "band",
                    "elder_id": f"el-{suffix}",
                    "heartbeat_s": heartbeat_s,
                },
                {
                    "id": f"cane-{suffix}",
                    "type": "cane",
                    "elder_id": f"el-{suffix}",
                    "heartbeat_s": heartbeat_s,
                },
                {
                    "id": f"smoke-{suffix}",
                    "type": "smoke",
                    "elder_id": f"el-{suffix}",
                    "heartbeat_s": heartbeat_s,
                },
            ],
        }
    )


def prepare_db(schema_url: str, fleet: Fleet) -> None:
    """Migrate the test schema and import the fleet."""
    with psycopg.connect(schema_url, autocommit=True) as conn:
        apply_migrations(conn)
    with psycopg.connect(schema_url) as conn:
        import_fleet(conn, fleet)
        conn.commit()


class AlertListener:
    """Subscribes to every centre's alert topic under a prefix and collects decoded alerts."""

    def __init__(self, mqtt_url: str, prefix: str) -> None:
        self.alerts: queue.Queue[tuple[str, AlertMessage, float]] = queue.Queue()
        address = parse_mqtt_url(mqtt_url)
        self.client: Client = make_client(address=address)
        ready = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(alert_filter(prefix), 1)
        self.client.on_subscribe = lambda c, u, m, r, p=None: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        assert ready.wait(10), "listener could not subscribe"

    def _on_message(self, client: Client, userdata: object, msg: MQTTMessage) -> None:
        self.alerts.put((msg.topic, decode_alert(msg.payload), time.monotonic()))

    def next(self, timeout_s: float = 10.0) -> tuple[str, AlertMessage, float]:
        """The next alert received (topic, message, monotonic receive time)."""
        return self.alerts.get(timeout=timeout_s)

    def wait_for(self, pred: object, timeout_s: float = 10.0) -> tuple[str, AlertMessage, float]:
        """The first alert for which `pred(topic, message)` holds."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no matching alert in time"
            topic, msg, at = self.next(left)
            if pred(topic, msg):  # type: ignore[operator]
                return topic, msg, at

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class DevicePublisher:
    """Publishes device messages (QoS 1) under a prefix."""

    def __init__(self, mqtt_url: str, prefix: str) -> None:
        address = parse_mqtt_url(mqtt_url)
        self.prefix = prefix
        self.client: Client = make_client(address=address)
        self.client.connect(address.host, address.port)
        self.client.loop_start()

    def send(self, message: Message) -> None:
        topic, payload = encode_message(message, self.prefix)
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def settings_for(mqtt_url: str, schema_url: str, prefix: str, **extra: object) -> AlertingSettings:
    """Service settings isolated to one test."""
    return AlertingSettings(
        database_url=schema_url,
        mqtt_url=mqtt_url,
        topic_prefix=prefix,
        client_id=f"alerting-{prefix.strip('/')}-{uuid.uuid4().hex[:6]}",
        tick_s=0.2,
        centers_reload_s=0.5,
        **extra,  # type: ignore[arg-type]
    )


@contextmanager
def running(
    settings: AlertingSettings,
    clock: Callable[[], int] | None = None,
    ready_timeout_s: float = 20.0,
) -> Iterator[AlertingService]:
    """Run the service (on `clock`, else the wall clock) in a thread until the block ends."""
    service = AlertingService(settings) if clock is None else AlertingService(settings, clock)
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            service.run(stop)
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout_s
    while not service.ready.is_set():
        assert not errors, f"service failed: {errors[0]!r}"
        assert time.monotonic() < deadline, "service did not become ready"
        time.sleep(0.05)
    try:
        yield service
    finally:
        stop.set()
        thread.join(10)
    assert not errors, f"service failed: {errors[0]!r}"


class CuttableProxy:
    """A TCP relay to PostgreSQL that can be cut like a partition seen from one side.

    `cut()` closes the server side of every relayed connection (the server sees the client
    gone and drops its session and locks) while the client side stays open and silent, and
    new connections are accepted but never relayed: the client sees a black hole.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._cut = threading.Event()
        self._upstreams: list[socket.socket] = []
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._cut.is_set():
                self._held.append(client)
                continue
            upstream = socket.create_connection(self.target)
            self._upstreams.append(upstream)
            self._held.append(client)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if self._cut.is_set():
                    return
                dst.sendall(data)

    def cut(self) -> None:
        self._cut.set()
        for up in self._upstreams:
            with contextlib.suppress(OSError):
                up.shutdown(socket.SHUT_RDWR)
            up.close()

    def close(self) -> None:
        self._server.close()
        for s in self._held:
            s.close()
