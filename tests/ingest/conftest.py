"""Fixtures of the ingest tests: migrated schemas, a fleet, a running service, own servers."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import paho.mqtt.client as paho
import psycopg
import pytest

from eldercare.broker import free_port, start_mosquitto, stop
from gateway import CareCenter, Device, DeviceType, Elder, Family, Fleet
from gateway.mqtt import make_client, parse_mqtt_url
from ingest.db import connect
from ingest.migrate import apply_migrations
from ingest.registry import import_fleet
from ingest.service import IngestService
from ingest.settings import IngestSettings

ROOT = Path(__file__).resolve().parents[2]
PGLITE_DIR = ROOT / ".ci" / "pglite"


def make_fleet(suffix: str, per_type: int = 2) -> Fleet:
    """A small fleet whose ids are unique to one test."""
    centre = CareCenter(f"cc-{suffix}", "Centre", 39.93, 116.37)
    elders, devices = [], []
    for i in range(per_type):
        elder_id = f"el-{suffix}-{i}"
        elders.append(
            Elder(
                elder_id,
                f"Elder {i}",
                39.93 + i / 1000,
                116.37,
                families=(Family(f"fa-{suffix}-{i}", f"Family {i}"),),
            )
        )
        for dtype in DeviceType:
            devices.append(Device(f"{dtype.value}-{suffix}-{i}", dtype, elder_id, 60))
    return Fleet((centre,), tuple(elders), tuple(devices))


@pytest.fixture
def migrated_url(schema_url: str) -> str:
    """A DATABASE_URL of a fresh schema with every migration applied."""
    with connect(schema_url) as conn:
        apply_migrations(conn)
    return schema_url


@pytest.fixture
def fleet(device_suffix: str) -> Fleet:
    """This test's fleet: two devices of each type."""
    return make_fleet(device_suffix)


@pytest.fixture
def registered(migrated_url: str, fleet: Fleet) -> str:
    """A migrated schema with this test's fleet imported; yields its URL."""
    with connect(migrated_url) as conn:
        import_fleet(conn, fleet)
    return migrated_url


def settings_for(database_url: str, mqtt_url: str, prefix: str, **extra: object) -> IngestSettings:
    """Ingest settings of one test: own prefix, own client id (own persistent session)."""
    values: dict[str, object] = {
        "database_url": database_url,
        "mqtt_url": mqtt_url,
        "topic_prefix": prefix,
        "client_id": f"ingest-{uuid.uuid4().hex[:10]}",
        "batch_wait_ms": 20,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 2.0,
        "session_expiry_s": 600,
    }
    values.update(extra)
    return IngestSettings(**values)  # type: ignore[arg-type]


@contextmanager
def running(settings: IngestSettings) -> Iterator[IngestService]:
    """Run an IngestService in a thread until the block ends (then a clean stop)."""
    service = IngestService(settings)
    stop_event = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop_event,), daemon=True)
    thread.start()
    try:
        assert service.wait_subscribed(20), "ingest did not subscribe"
        yield service
    finally:
        stop_event.set()
        thread.join(30)
        assert not thread.is_alive(), "ingest did not stop"


class Publisher:
    """A QoS 1 test publisher that keeps its session across broker restarts."""

    def __init__(self, url: str) -> None:
        addr = parse_mqtt_url(url)
        self.client = make_client(f"pub-{uuid.uuid4().hex[:10]}", mqtt5=True)
        self.client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]
        self.client.max_inflight_messages_set(1000)
        self.infos: list[paho.MQTTMessageInfo] = []
        from gateway.mqtt import connect_properties

        self.client.connect(
            addr.host, addr.port, clean_start=False, properties=connect_properties(600)
        )
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        deadline = time.monotonic() + 30
        while not self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.infos.append(self.client.publish(topic, payload, qos=qos))

    def wait(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        for info in self.infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        assert all(i.is_published() for i in self.infos), "not every publish was acknowledged"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mqtt_url: str) -> Iterator[Publisher]:
    """A QoS 1 publisher on the shared broker."""
    pub = Publisher(mqtt_url)
    yield pub
    pub.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    """A Mosquitto of this test alone (shipped config, persistence in tmp_path)."""
    port = free_port()
    data = tmp_path / "mosquitto"
    proc = start_mosquitto(port, data)
    state = {"proc": proc}
    yield f"mqtt://127.0.0.1:{port}", data, port
    stop(state["proc"])


def wait_for(predicate: object, timeout_s: float = 30, every_s: float = 0.2) -> bool:
    """Poll `predicate()` until it is true or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(every_s)
    return False


_PGLITE: dict[str, str] = {}


def _start_pglite() -> str:
    """Start the shared WebAssembly server once per test session; stopped at exit."""
    if "url" in _PGLITE:
        return _PGLITE["url"]
    if not (PGLITE_DIR / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
        pytest.fail("run `npm ci --prefix .ci/pglite` first: .ci/pglite/node_modules is missing")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [node, "server.mjs", str(port)],
        cwd=PGLITE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"postgresql://postgres:postgres@127.0.0.1:{port}/postgres?sslmode=disable"
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(url, connect_timeout=2, prepare_threshold=None).close()
            break
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"pglite server did not start: {out[-2000:]}")
            time.sleep(0.3)
    atexit.register(lambda: (proc.terminate(), proc.wait(10)))
    _PGLITE["url"] = url
    return url


@pytest.fixture
def pglite_url() -> Iterator[str]:
    """A TimescaleDB server for one test.

    With $TIMESCALEDB_TEST_URL (a native TimescaleDB server, any database on it), each test
    gets a database of its own, created and dropped here: the extension and its catalog are
    per database, so one test's hypertables never meet another's. Without it, the shared
    PostgreSQL 17 + TimescaleDB WebAssembly build (one database for the whole session).
    """
    real = os.environ.get("TIMESCALEDB_TEST_URL")
    if not real:
        yield _start_pglite()
        return
    name = f"ts_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(real, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(real)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(real, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
