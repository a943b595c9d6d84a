"""Alerting as active/standby: two real `eldercare alerting` processes, one private broker.

Only the holder of the alerting lock acts; SIGKILL it and the standby takes over, raising an
SOS pressed after the kill exactly once; two processes on a healthy fleet raise nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from alerting import store
from alerting.leader import _KEY_SQL
from eldercare.broker import free_port, start_mosquitto, stop
from gateway import AlertKind, AlertStatus, DeviceType, Event, Fleet, Status, parse_fleet
from tests.alerting.helpers import (
    AlertListener,
    CuttableProxy,
    DevicePublisher,
    prepare_db,
    small_fleet,
)

ROOT = Path(__file__).resolve().parents[2]
ELDERCARE = ROOT / ".venv" / "bin" / "eldercare"


class Proc:
    """One `eldercare alerting` subprocess whose log lines are collected as they come."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [str(ELDERCARE), "alerting"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def wait_for(self, text: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.saw(text):
            assert self.proc.poll() is None, f"{self.name} exited:\n" + "\n".join(self.lines)
            assert time.monotonic() < deadline, f"{self.name} never logged {text!r}:\n" + (
                "\n".join(self.lines[-30:])
            )
            time.sleep(0.05)

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = start_mosquitto(port, tmp_path / "mosquitto")
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        stop(proc)


def _env(mqtt_url: str, schema_url: str, prefix: str, tmp_path: Path, n: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTING_")}
    env.update(
        DATABASE_URL=schema_url,
        MQTT_URL=mqtt_url,
        ALERTING_TOPIC_PREFIX=prefix,
        # The same client id on purpose: the replicas share one broker session (leader.py).
        ALERTING_CLIENT_ID=f"alerting-{prefix.strip('/')}",
        ALERTING_TICK_S="0.2",
        ALERTING_CENTERS_RELOAD_S="0.5",
        ALERTING_OUTBOX_PATH=str(tmp_path / f"outbox-{n}.sqlite3"),
        ELDERCARE_LOG_LEVEL="INFO",
        # The processes run this checkout, as the tests do, whatever the install maps.
        PYTHONPATH=str(ROOT),
    )
    return env


def _press(suffix: str, seq: int, ts: int) -> Event:
    return Event(device_id=f"btn-{suffix}", type=DeviceType.BUTTON, seq=seq, ts=ts, event="press")


def _resolve(schema_url: str, alert_id: str) -> None:
    with psycopg.connect(schema_url) as conn:
        store.transition(
            conn, alert_id, AlertStatus.RESOLVED, "tester", "drill", int(time.time() * 1000)
        )


@pytest.mark.slow
def test_sigkill_of_the_active_fails_over_to_the_standby_without_loss_or_doubles(
    private_broker: str, schema_url: str, topic_prefix: str, device_suffix: str, tmp_path: Path
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    listener = AlertListener(private_broker, topic_prefix)
    devices = DevicePublisher(private_broker, topic_prefix)
    first = Proc(_env(private_broker, schema_url, topic_prefix, tmp_path, 1), "first")
    second: Proc | None = None
    try:
        first.wait_for("alerting ready")
        second = Proc(_env(private_broker, schema_url, topic_prefix, tmp_path, 2), "second")
        second.wait_for("standby: another process holds the alerting lock")

        ts1 = int(time.time() * 1000)
        devices.send(_press(device_suffix, 1, ts1))
        _, alert1, _ = listener.wait_for(lambda t, m: m.event_ts == ts1, 10)
        time.sleep(1.0)
        assert first.saw("raised critical sos alert") and not second.saw("raised")
        assert listener.alerts.empty(), "one press, one alert message"
        _resolve(schema_url, alert1.alert_id)

        first.proc.kill()  # SIGKILL: no clean shutdown, no lock release by the process
        killed = time.monotonic()
        ts2 = int(time.time() * 1000)
        devices.send(_press(device_suffix, 2, ts2))
        _, alert2, got = listener.wait_for(lambda t, m: m.event_ts == ts2, 20)
        failover_s = got - killed
        print(f"\nfailover: SOS pressed after SIGKILL of the active alerted in {failover_s:.2f} s")
        assert failover_s < 10.0
        assert alert2.kind is AlertKind.SOS and alert2.status is AlertStatus.OPEN
        assert second.saw("active: holding the alerting lock")
        time.sleep(2.0)
        late = []
        while not listener.alerts.empty():
            late.append(listener.alerts.get()[1])
        assert [m for m in late if m.event_ts == ts2 and m.status is AlertStatus.OPEN] == []
        with psycopg.connect(schema_url) as conn:
            rows = store.list_alerts(conn)
        assert sorted((a.event_ts, a.status) for a in rows) == [
            (ts1, AlertStatus.RESOLVED),
            (ts2, AlertStatus.OPEN),
        ]
    finally:
        first.end()
        if second is not None:
            second.end()
        listener.close()
        devices.close()


def _buttons(suffix: str, n: int, heartbeat_s: int) -> Fleet:
    return parse_fleet(
        {
            "care_centers": [
                {"id": f"cc-{suffix}", "name": "C", "lat": 39.93, "lon": 116.37, "capacity": 50}
            ],
            "elders": [
                {"id": f"el-{suffix}-{i}", "name": f"E{i}", "home_lat": 39.93, "home_lon": 116.37}
                for i in range(n)
            ],
            "devices": [
                {
                    "id": f"btn-{suffix}-{i}",
                    "type": "button",
                    "elder_id": f"el-{suffix}-{i}",
                    "heartbeat_s": heartbeat_s,
                }
                for i in range(n)
            ],
        }
    )


@pytest.mark.slow
def test_two_processes_on_200_healthy_buttons_raise_no_offline_alert(
    private_broker: str, schema_url: str, topic_prefix: str, device_suffix: str, tmp_path: Path
) -> None:
    heartbeat_s, n, run_s = 4, 200, 40.0
    fleet = _buttons(device_suffix, n, heartbeat_s)
    prepare_db(schema_url, fleet)
    listener = AlertListener(private_broker, topic_prefix)
    devices = DevicePublisher(private_broker, topic_prefix)
    procs = [Proc(_env(private_broker, schema_url, topic_prefix, tmp_path, 1), "first")]
    try:
        procs[0].wait_for("alerting ready")
        procs.append(Proc(_env(private_broker, schema_url, topic_prefix, tmp_path, 2), "second"))
        procs[1].wait_for("standby: another process holds the alerting lock")
        # Every button reports every heartbeat/2 s: silence is never near 2.5 x heartbeat_s.
        end = time.monotonic() + run_s
        while time.monotonic() < end:
            round_start = time.monotonic()
            for d in fleet.devices:
                devices.send(
                    Status(
                        device_id=d.id,
                        type=DeviceType.BUTTON,
                        online=True,
                        ts=int(time.time() * 1000),
                        heartbeat_s=heartbeat_s,
                    )
                )
            time.sleep(max(0.0, heartbeat_s / 2 - (time.monotonic() - round_start)))
        time.sleep(1.0)
        assert all(p.proc.poll() is None for p in procs)
        with psycopg.connect(schema_url) as conn:
            stored = store.list_alerts(conn)
        offline = sum(a.kind is AlertKind.DEVICE_OFFLINE for a in stored)
        messages = listener.alerts.qsize()
        print(
            f"\n{n} healthy buttons, 2 processes, {run_s:.0f} s:"
            f" {offline} offline alerts stored, {messages} alert messages"
        )
        assert stored == [] and messages == 0, "a healthy fleet raised alerts"
        assert not any(p.saw("raised") for p in procs)
    finally:
        for p in procs:
            p.end()
        listener.close()
        devices.close()


def _lock_holders(schema_url: str, prefix: str) -> list[int]:
    """Backend pids holding this deployment's alerting lock (the key leader.py derives)."""
    with psycopg.connect(schema_url) as conn:
        row = conn.execute(_KEY_SQL, (prefix,)).fetchone()
        assert row is not None
        key = int(row[0])
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND classid::bigint = ((%s >> 32) & 4294967295)"
            " AND objid::bigint = (%s & 4294967295)",
            (key, key),
        ).fetchall()
    return [int(r[0]) for r in rows]


def _sos_exactly_once(
    schema_url: str, listener: AlertListener, devices: DevicePublisher, suffix: str, seq: int
) -> float:
    """Press once; the SOS is published once (as new) and stored once; returns the delay, s."""
    sent = time.monotonic()
    ts = int(time.time() * 1000)
    devices.send(_press(suffix, seq, ts))
    _, alert, got = listener.wait_for(lambda t, m: m.event_ts == ts, 20)
    assert alert.status is AlertStatus.OPEN
    time.sleep(2.0)
    again = []
    while not listener.alerts.empty():
        again.append(listener.alerts.get()[1])
    assert [m for m in again if m.event_ts == ts and m.alert_id != alert.alert_id] == []
    with psycopg.connect(schema_url) as conn:
        rows = [a for a in store.list_alerts(conn) if a.event_ts == ts]
    assert len(rows) == 1
    return got - sent


@pytest.mark.slow
def test_active_whose_lock_session_is_killed_leaves_exactly_one_active(
    private_broker: str, schema_url: str, topic_prefix: str, device_suffix: str, tmp_path: Path
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    listener = AlertListener(private_broker, topic_prefix)
    devices = DevicePublisher(private_broker, topic_prefix)
    procs = [Proc(_env(private_broker, schema_url, topic_prefix, tmp_path, 1), "first")]
    try:
        procs[0].wait_for("alerting ready")
        procs.append(Proc(_env(private_broker, schema_url, topic_prefix, tmp_path, 2), "second"))
        procs[1].wait_for("standby: another process holds the alerting lock")
        [holder] = _lock_holders(schema_url, topic_prefix)
        with psycopg.connect(schema_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (holder,))
        killed = time.monotonic()
        while True:
            holders = _lock_holders(schema_url, topic_prefix)
            if holders and holders != [holder]:
                break
            assert time.monotonic() - killed < 10, "nobody took the lock again"
            time.sleep(0.1)
        assert len(holders) == 1
        if procs[1].saw("active: holding the alerting lock"):
            # The standby won: the old active must have stopped acting.
            procs[0].wait_for("no longer the active alerting process", 10)
            procs[1].wait_for("alerting ready", 10)
        else:
            procs[0].wait_for("alerting lock taken again", 10)
        delay_s = _sos_exactly_once(schema_url, listener, devices, device_suffix, 1)
        assert delay_s < 10.0
        assert sum(p.saw("raised critical sos alert") for p in procs) == 1
    finally:
        for p in procs:
            p.end()
        listener.close()
        devices.close()


@pytest.mark.slow
def test_active_cut_off_from_the_database_is_fenced_by_the_broker(
    private_broker: str,
    schema_url: str,
    database_url: str,
    topic_prefix: str,
    device_suffix: str,
    tmp_path: Path,
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    host, port = str(info.get("host", "127.0.0.1")), int(str(info.get("port", 5432)))
    proxy = CuttableProxy((host, port))
    cut_url = schema_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
    assert cut_url != schema_url
    listener = AlertListener(private_broker, topic_prefix)
    devices = DevicePublisher(private_broker, topic_prefix)
    procs = [Proc(_env(private_broker, cut_url, topic_prefix, tmp_path, 1), "first")]
    try:
        procs[0].wait_for("alerting ready")
        procs.append(Proc(_env(private_broker, schema_url, topic_prefix, tmp_path, 2), "second"))
        procs[1].wait_for("standby: another process holds the alerting lock")
        proxy.cut()
        cut = time.monotonic()
        procs[1].wait_for("alerting ready", 15)
        takeover_s = time.monotonic() - cut
        procs[0].wait_for("another alerting process took it over", 15)
        print(f"\npartitioned active: standby ready {takeover_s:.2f} s after the cut")
        delay_s = _sos_exactly_once(schema_url, listener, devices, device_suffix, 1)
        assert delay_s < 10.0
        assert sum(p.saw("raised critical sos alert") for p in procs) == 1
        assert procs[1].saw("raised critical sos alert")
    finally:
        for p in procs:
            p.end()
        proxy.close()
        listener.close()
        devices.close()
