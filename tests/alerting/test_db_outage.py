"""Page first: alerts reach their centre while PostgreSQL is down (own cluster), and are
stored exactly once when it returns, even across a SIGKILL of the service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from alerting import store
from alerting.lifecycle import AlertRow
from alerting.outbox import Outbox
from eldercare.broker import free_port
from gateway import AlertKind, AlertStatus, DeviceType, Event
from tests.alerting.helpers import (
    AlertListener,
    DevicePublisher,
    prepare_db,
    running,
    settings_for,
    small_fleet,
    wait_until,
)
from tests.ingest.test_faults import Cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.remove()


def _press(suffix: str, seq: int, ts: int) -> Event:
    return Event(device_id=f"btn-{suffix}", type=DeviceType.BUTTON, seq=seq, ts=ts, event="press")


def _stored(url: str, alert_id: str) -> tuple[list[AlertRow], list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        alerts = store.list_alerts(conn, limit=100)
        rows = conn.execute(
            "SELECT at_ts, from_status, to_status, center_id, actor, note FROM alert_transitions"
            " WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        ).fetchall()
    return alerts, [tuple(r) for r in rows]


@pytest.mark.slow
def test_sos_paged_and_escalated_while_the_database_is_down_then_stored_once(
    cluster: Cluster, mqtt_url: str, topic_prefix: str, device_suffix: str, tmp_path: Path
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(cluster.url, fleet)
    outbox_path = str(tmp_path / "outbox.sqlite3")
    settings = settings_for(
        mqtt_url, cluster.url, topic_prefix, outbox_path=outbox_path, escalate_critical_s=2.0
    )
    near, far = (c.id for c in fleet.care_centers)
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    try:
        with running(settings) as service:
            cluster.stop()
            sent = time.monotonic()
            devices.send(_press(device_suffix, 1, int(time.time() * 1000)))
            _, opened, got = listener.wait_for(lambda t, m: m.kind is AlertKind.SOS, 10)
            assert got - sent < 1.0, f"SOS took {got - sent:.2f} s with the database down"
            assert opened.status is AlertStatus.OPEN and opened.center_id == near
            _, escalated, _ = listener.wait_for(
                lambda t, m: m.status is AlertStatus.ESCALATED and t.endswith(far), 15
            )
            assert escalated.alert_id == opened.alert_id
            assert Outbox(outbox_path).depth() == 1
            cluster.start()
            writer = service.writer
            assert writer is not None
            wait_until(lambda: writer.online, 60, "the service to reconnect")
            wait_until(lambda: Outbox(outbox_path).depth() == 0, 30, "the outbox to drain")
            escalations = writer.active[opened.alert_id].escalations
        alerts, transitions = _stored(cluster.url, opened.alert_id)
    finally:
        listener.close()
        devices.close()
    assert [(a.alert_id, a.status, a.center_id) for a in alerts] == [
        (opened.alert_id, AlertStatus.ESCALATED, far)
    ]
    assert alerts[0].escalations == escalations == 1
    steps = [(t[1], t[2], t[3]) for t in transitions]
    assert steps[:2] == [(None, "open", near), ("open", "escalated", far)]
    # Reminders follow (both centres tried); nothing is stored twice.
    assert all(s == ("escalated", "escalated", far) for s in steps[2:])
    assert max(Counter(transitions).values()) == 1


def _service_env(
    db_url: str, mqtt_url: str, prefix: str, outbox: Path, port: int
) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "MQTT_URL": mqtt_url,
        "ALERTING_TOPIC_PREFIX": prefix,
        "ALERTING_CLIENT_ID": f"alerting-kill-{prefix.strip('/')}",
        "ALERTING_SHARE_GROUP": "",
        "ALERTING_OUTBOX_PATH": str(outbox),
        "ALERTING_METRICS_PORT": str(port),
        "ALERTING_TICK_S": "0.2",
        "PYTHONPATH": str(ROOT),
    }


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
            return int(reply.status) == 200
    except OSError:
        return False


@pytest.mark.slow
def test_outbox_survives_sigkill_during_the_outage(
    cluster: Cluster, mqtt_url: str, topic_prefix: str, device_suffix: str, tmp_path: Path
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(cluster.url, fleet)
    port = free_port()
    env = _service_env(cluster.url, mqtt_url, topic_prefix, tmp_path / "outbox.sqlite3", port)
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    proc = subprocess.Popen([sys.executable, "-m", "alerting"], env=env, cwd=tmp_path)
    try:
        wait_until(lambda: _ready(port), 60, "the service to be ready")
        cluster.stop()
        devices.send(_press(device_suffix, 1, int(time.time() * 1000)))
        _, opened, _ = listener.wait_for(lambda t, m: m.kind is AlertKind.SOS, 10)
        # Acknowledged to the broker only once in the outbox: kill it right after the page.
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        cluster.start()
        proc = subprocess.Popen([sys.executable, "-m", "alerting"], env=env, cwd=tmp_path)
        wait_until(lambda: _ready(port), 60, "the restarted service to be ready")
        alerts, transitions = _stored(cluster.url, opened.alert_id)
    finally:
        proc.terminate()
        proc.wait(20)
        listener.close()
        devices.close()
    assert [(a.alert_id, a.kind, a.status) for a in alerts] == [
        (opened.alert_id, AlertKind.SOS, AlertStatus.OPEN)
    ]
    assert [(t[1], t[2]) for t in transitions] == [(None, "open")]


def test_a_handler_bug_is_dead_lettered_as_internal_error_and_not_redelivered(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    # A non-retryable database error stands for any bug while handling one message.
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION refuse_alert() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON alerts FOR EACH ROW EXECUTE FUNCTION"
            " refuse_alert()"
        )
    settings = settings_for(mqtt_url, schema_url, topic_prefix, share_group="")
    devices = DevicePublisher(mqtt_url, topic_prefix)
    try:
        with running(settings) as service:
            devices.send(_press(device_suffix, 1, int(time.time() * 1000)))
            wait_until(lambda: service.stats.errors == 1, 10, "the handler error")
            dead_lettered = service.stats.dead_lettered
        with psycopg.connect(schema_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER refuse ON alerts")
        # Acknowledged once dead-lettered: the same session does not get it again.
        with running(settings) as service:
            time.sleep(2.0)
            raised = service.raised()
    finally:
        devices.close()
    with psycopg.connect(schema_url) as conn:
        rows = conn.execute("SELECT topic, reason, detail FROM dead_letters").fetchall()
    assert dead_lettered == 1
    assert [(r[0], r[1]) for r in rows] == [
        (f"{topic_prefix}eldercare/v1/devices/btn-{device_suffix}/events", "internal_error")
    ]
    assert "refused for the test" in rows[0][2]
    assert raised == []


def _cluster_pids(cluster: Cluster) -> list[int]:
    postmaster = int((cluster.dir / "data" / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(postmaster)], capture_output=True, text=True
    ).stdout.split()
    return [postmaster, *map(int, children)]


@pytest.mark.slow
def test_a_database_that_stops_answering_pages_after_the_deadline_and_merges_once(
    cluster: Cluster, mqtt_url: str, topic_prefix: str, device_suffix: str, tmp_path: Path
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(cluster.url, fleet)
    outbox_path = str(tmp_path / "outbox.sqlite3")
    settings = settings_for(
        mqtt_url, cluster.url, topic_prefix, outbox_path=outbox_path, db_deadline_s=1.0
    )
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    try:
        with running(settings) as service:
            # Every server process stopped: TCP still answers, PostgreSQL never does.
            pids = _cluster_pids(cluster)
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            try:
                sent = time.monotonic()
                devices.send(_press(device_suffix, 1, int(time.time() * 1000)))
                _, opened, got = listener.wait_for(lambda t, m: m.kind is AlertKind.SOS, 15)
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            writer = service.writer
            assert writer is not None
            wait_until(lambda: writer.online, 60, "the service to reconnect")
            wait_until(lambda: Outbox(outbox_path).depth() == 0, 30, "the outbox to drain")
            time.sleep(0.5)
        with psycopg.connect(cluster.url) as conn:
            alerts = store.list_alerts(conn)
        assert got - sent < 1.0 + 3.0, f"SOS took {got - sent:.2f} s with the database stopped"
        active = [a for a in alerts if a.active]
        assert len(active) == 1 and active[0].kind is AlertKind.SOS
        if active[0].alert_id != opened.alert_id:
            # The abandoned raise committed once the database woke up: ours was merged into
            # it, and the centre is told both.
            (ours,) = [a for a in alerts if a.alert_id == opened.alert_id]
            note = f"merged into {active[0].alert_id}"
            assert (ours.status, ours.reason) == (AlertStatus.CANCELLED, note)
            listener.wait_for(lambda t, m: (m.alert_id, m.reason) == (ours.alert_id, note), 5)
            listener.wait_for(lambda t, m: m.alert_id == active[0].alert_id, 5)
    finally:
        listener.close()
        devices.close()
