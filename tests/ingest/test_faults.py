"""Fault injection (slow): broker restart, PostgreSQL restart, kill -9 of the consumer.

After recovery nothing is missing and nothing is doubled. Every server restarted here belongs to
the test (its own Mosquitto, its own throwaway PostgreSQL cluster); the shared ones are untouched.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from eldercare.broker import free_port, start_mosquitto, stop
from eldercare.database import server_bin_dir
from gateway import Fleet
from ingest.db import connect, dead_letter_counts, row_counts
from ingest.migrate import apply_migrations
from ingest.registry import import_fleet
from tests.ingest.conftest import Publisher, make_fleet, running, settings_for, wait_for
from tests.ingest.streams import valid_messages, wire

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PG_BIN = server_bin_dir()


def _stored(url: str) -> int:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            return sum(row_counts(conn).values())
    except psycopg.OperationalError:
        return -1


def _wait_consuming(url: str, publisher: Publisher, prefix: str, timeout_s: float = 60) -> bool:
    """Publish a malformed probe until ingest dead-letters one: its subscription is live.

    A subprocess may take seconds to start on a loaded machine, and what is published before
    its first subscription exists has no session to wait in.
    """
    topic = f"{prefix}eldercare/v1/devices/probe-000/telemetry"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        publisher.publish(topic, b"not json")
        with psycopg.connect(url, autocommit=True) as conn:
            if sum(dead_letter_counts(conn).values()) > 0:
                return True
        time.sleep(0.25)
    return False


def _duplicates_impossible_and_exact(url: str, expected: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        assert sum(row_counts(conn).values()) == expected


class Cluster:
    """A throwaway PostgreSQL cluster (initdb in a temp dir, its own port)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="eldercare-pg-"))
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(PG_BIN / "initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: object) -> None:
        subprocess.run(
            [*self.as_user, *map(str, args)], check=True, capture_output=True, timeout=120
        )

    def start(self) -> None:
        self._run(
            PG_BIN / "pg_ctl",
            "-D",
            self.dir / "data",
            "-l",
            self.dir / "log",
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1",
            "start",
        )

    def stop(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.remove()


def _prepare(url: str, fleet: Fleet) -> None:
    with connect(url) as conn:
        apply_migrations(conn)
        import_fleet(conn, fleet)


@pytest.mark.parametrize("group", ["ingest", ""], ids=["shared", "plain"])
def test_broker_restart_mid_stream(
    own_broker: tuple[str, Path, int],
    schema_url: str,
    topic_prefix: str,
    device_suffix: str,
    group: str,
) -> None:
    url, data, port = own_broker
    fleet = make_fleet(device_suffix, per_type=3)
    _prepare(schema_url, fleet)
    stream = wire(valid_messages(fleet, 60, random.Random(11)), topic_prefix)
    half = len(stream) // 2
    settings = settings_for(
        schema_url, url, topic_prefix, batch_max=25, receive_maximum=100, share_group=group
    )
    with running(settings) as service:
        pub = Publisher(url)
        for topic, payload in stream[:half]:
            pub.publish(topic, payload)
        pub.wait()
        stored_before = _stored(schema_url)
        # A graceful restart: Mosquitto writes its persistence file, keeping queued messages.
        proc = subprocess.run(
            ["pgrep", "-f", f"mosquitto -c {data}/mosquitto.conf"], capture_output=True, text=True
        )
        for pid in proc.stdout.split():
            os.kill(int(pid), signal.SIGTERM)
        time.sleep(1.0)
        new = start_mosquitto(port, data)
        if group:
            # Mosquitto 2.0.11 does not restore shared subscriptions from persistence: a shared
            # consumer only gets what is published after it has re-subscribed.
            assert wait_for(lambda: service.subscribed_connections() >= 2, 30)
        try:
            for topic, payload in stream[half:]:
                pub.publish(topic, payload)
            pub.wait(60)
            assert wait_for(lambda: _stored(schema_url) >= len(stream), 60)
            time.sleep(1.0)  # anything doubled would show up now
            pub.close()
        finally:
            stop(new)
    assert stored_before < len(stream)
    _duplicates_impossible_and_exact(schema_url, len(stream))


def test_postgres_restart_mid_stream(
    cluster: Cluster, mqtt_url: str, topic_prefix: str, device_suffix: str, publisher: Publisher
) -> None:
    fleet = make_fleet(device_suffix, per_type=3)
    _prepare(cluster.url, fleet)
    stream = wire(valid_messages(fleet, 50, random.Random(5)), topic_prefix)
    third = len(stream) // 3
    with running(settings_for(cluster.url, mqtt_url, topic_prefix, batch_max=20)) as service:
        for topic, payload in stream[:third]:
            publisher.publish(topic, payload)
        publisher.wait()
        assert wait_for(lambda: _stored(cluster.url) == third, 30)
        cluster.stop()
        for topic, payload in stream[third:]:
            publisher.publish(topic, payload)
        publisher.wait()
        time.sleep(2.0)  # the consumer keeps retrying while the database is down
        cluster.start()
        assert wait_for(lambda: _stored(cluster.url) >= len(stream), 60)
        time.sleep(1.0)
        errors = service.metrics.db_errors._value.get()
    assert errors >= 1
    _duplicates_impossible_and_exact(cluster.url, len(stream))


def _ingest_process(
    db_url: str, mqtt_url: str, prefix: str, client_id: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "MQTT_URL": mqtt_url,
        "INGEST_TOPIC_PREFIX": prefix,
        "INGEST_CLIENT_ID": client_id,
        "INGEST_BATCH_MAX": "50",
        "INGEST_BATCH_WAIT_MS": "20",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "eldercare", "ingest"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kill_9_then_restart_and_sigterm_flush(
    schema_url: str, own_broker: tuple[str, Path, int], topic_prefix: str, device_suffix: str
) -> None:
    # The shipped broker config: the default 1,000-message session queue would drop messages.
    mqtt_url = own_broker[0]
    publisher = Publisher(mqtt_url)
    fleet = make_fleet(device_suffix, per_type=5)
    _prepare(schema_url, fleet)
    stream = wire(valid_messages(fleet, 100, random.Random(9)), topic_prefix)
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    proc = _ingest_process(schema_url, mqtt_url, topic_prefix, client_id)
    try:
        assert _wait_consuming(schema_url, publisher, topic_prefix)
        for topic, payload in stream:
            publisher.publish(topic, payload)
        assert wait_for(lambda: _stored(schema_url) > 0, 30, every_s=0.02)
        proc.kill()  # SIGKILL mid-stream: no flush, nothing acknowledged after the last commit
        proc.wait(10)
        publisher.wait()
        killed_at = _stored(schema_url)
        proc = _ingest_process(schema_url, mqtt_url, topic_prefix, client_id)
        assert wait_for(lambda: _stored(schema_url) >= len(stream), 90)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0  # clean flush and exit
    finally:
        publisher.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert 0 < killed_at < len(stream)
    _duplicates_impossible_and_exact(schema_url, len(stream))
