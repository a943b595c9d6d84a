"""The home hub against real brokers: a 10-minute uplink outage with a SIGKILL in the middle,
and a storage bound that drops only routine telemetry.

Upstream: a private Mosquitto with the configuration `eldercare gateway broker-config` writes
(auth and ACLs from the registry in this test's schema). Local: a private anonymous Mosquitto,
the home's broker, where the devices publish. The hub runs as `eldercare gateway hub` in its
own process so it can be killed. The home's internet link is a TCP relay between the hub and
the platform broker that the test cuts and restores; the platform keeps running meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from eldercare.broker import broker_reachable, free_port, start_mosquitto, stop
from gateway.mqtt import connect_properties, make_client
from ingest.db import connect
from tests.gateway.auth_broker import ROOT, cli, issue, make_registry
from tests.ingest.conftest import Publisher, running, settings_for

pytestmark = pytest.mark.slow

MINUTE_MS = 60_000


class Upstream:
    """The platform broker, stopped and started again on the same port and files."""

    def __init__(self, url: str, conf_dir: Path) -> None:
        self.port = free_port()
        self.conf_dir = conf_dir
        done = cli(
            url, "gateway", "broker-config", "--out", str(conf_dir), "--port", str(self.port)
        )
        assert done.returncode == 0, done.stderr
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.conf_dir / "mosquitto.log").open("ab")
        conf = str(self.conf_dir / "mosquitto.conf")
        self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while not broker_reachable(f"mqtt://127.0.0.1:{self.port}", 0.2):
            assert time.monotonic() < deadline, (self.conf_dir / "mosquitto.log").read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


class Link:
    """The home's internet link: a TCP relay to the platform broker that can be cut (every
    connection closed, new ones refused) and restored, while the broker keeps running."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for sock in self.conns:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.conns = []

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.server.close()


class Watcher:
    """A platform-side subscriber with a persistent session: it misses nothing across a
    restart of the upstream broker (MQTT 5 §3.1.2.11.2)."""

    def __init__(self, port: int, creds: dict[str, str], *topics: str) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.client = make_client(f"watch-{uuid.uuid4().hex[:8]}")
        self.client.username_pw_set(creds["username"], creds["password"])
        self.client.reconnect_delay_set(1, 1)
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, json.loads(m.payload))
        )
        self.client.connect(
            "127.0.0.1", port, clean_start=False, properties=connect_properties(600)
        )
        self.client.loop_start()
        deadline = time.monotonic() + 10
        while not self.client.is_connected():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = self.client.subscribe([(t, 1) for t in topics])
        assert info[0] == paho.MQTT_ERR_SUCCESS
        time.sleep(0.5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _register(url: str, suffix: str) -> dict[str, str]:
    make_registry(url, suffix, n_devices=1)
    elder = f"el-{suffix}"
    with connect(url) as conn:
        conn.execute(
            "INSERT INTO elders (id, name, home_lat, home_lon) VALUES (%s, 'O', 39.9, 116.3)",
            (f"other-{suffix}",),
        )
        for dev, kind, owner in [
            (f"band-{suffix}", "band", elder),
            (f"smk-{suffix}", "smoke", elder),
            (f"nbr-{suffix}", "button", f"other-{suffix}"),
        ]:
            conn.execute(
                "INSERT INTO devices (id, type, elder_id) VALUES (%s, %s, %s)", (dev, kind, owner)
            )
        conn.commit()
    return {
        "button": f"btn-{suffix}-0",
        "band": f"band-{suffix}",
        "smoke": f"smk-{suffix}",
        "neighbour": f"nbr-{suffix}",
    }


def _message(kind: str, seq: int, ts: int) -> dict[str, Any]:
    body: dict[str, Any] = {"v": 1, "type": kind, "seq": seq, "ts": ts}
    if kind == "band":
        body.update(lat=39.9, lon=116.3, hacc_m=5.0, steps=4, worn=True)
    elif kind == "smoke":
        body.update(smoke_db_m=0.0, temp_c=21.5)
    else:
        body["event"] = "press"
    return body


@contextmanager
def _hub(
    tmp: Path, elder: str, creds: dict[str, str], local: int, up: int, **extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    (tmp / "hub.pw").write_text(creds["password"])
    env = dict(os.environ, MQTT_USERNAME=creds["username"], MQTT_PASSWORD_FILE=str(tmp / "hub.pw"))
    env.pop("MQTT_PASSWORD", None)
    args = [
        sys.executable, "-m", "eldercare", "gateway", "hub", "--hub-id", elder,
        "--local-url", f"mqtt://127.0.0.1:{local}", "--upstream-url", f"mqtt://127.0.0.1:{up}",
        "--queue", str(tmp / "hub" / "queue.sqlite3"), "--status-interval", "1",
    ]  # fmt: skip
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    log = (tmp / "hub.log").open("ab")
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=log)
    log.close()
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)


def _wait(cond: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _stored(url: str, devices: dict[str, str]) -> dict[str, list[int]]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT device_id, seq FROM band_telemetry UNION ALL"
            " SELECT device_id, seq FROM smoke_telemetry UNION ALL"
            " SELECT device_id, seq FROM device_events"
        ).fetchall()
    out: dict[str, list[int]] = {d: [] for d in devices.values()}
    for device_id, seq in rows:
        out[device_id].append(seq)
    return {d: sorted(s) for d, s in out.items()}


def _first_seen(watcher: Watcher, device_id: str) -> list[int]:
    seen: list[int] = []
    for topic, body in list(watcher.messages):
        if f"/devices/{device_id}/" in topic and "seq" in body and body["seq"] not in seen:
            seen.append(body["seq"])
    return seen


def test_outage_with_sigkill_loses_nothing_and_keeps_order(
    schema_url: str, device_suffix: str, tmp_path: Path
) -> None:
    devices = _register(schema_url, device_suffix)
    elder = f"el-{device_suffix}"
    hub_creds = issue(schema_url, elder, "--hub")
    ingest_creds = issue(schema_url, "ingest", "--service")
    dashboard_creds = issue(schema_url, "dashboard", "--service")
    upstream = Upstream(schema_url, tmp_path / "up")
    upstream.start()
    link = Link(upstream.port)
    local_proc = start_mosquitto(local := free_port(), tmp_path / "local")
    pub = Publisher(f"mqtt://127.0.0.1:{local}")
    ingest_url = (
        f"mqtt://{ingest_creds['username']}:{ingest_creds['password']}@127.0.0.1:{upstream.port}"
    )
    watcher = Watcher(upstream.port, ingest_creds, "eldercare/v1/devices/+/+")
    status = Watcher(upstream.port, dashboard_creds, f"eldercare/v1/hubs/{elder}/status")
    # Ten minutes of device time, sped up: a band every 30 s, a smoke detector every 60 s,
    # a press every 2 minutes, and one message of a device of another home.
    start_ms = int(time.time() * 1000) - 11 * MINUTE_MS
    plan: list[tuple[int, str, str, int]] = []  # (device ts, kind, device id, seq)
    for kind, every_s in [("band", 30), ("smoke", 60), ("button", 120)]:
        for seq, t in enumerate(range(0, 600, every_s)):
            plan.append((start_ms + t * 1000, kind, devices[kind], seq))
    plan.sort()

    def send(lo_min: int, hi_min: int) -> None:
        for ts, kind, device_id, seq in plan:
            if lo_min * MINUTE_MS <= ts - start_ms < hi_min * MINUTE_MS:
                channel = "telemetry" if kind != "button" else "events"
                topic = f"eldercare/v1/devices/{device_id}/{channel}"
                pub.publish(topic, json.dumps(_message(kind, seq, ts)).encode())
        pub.wait()

    try:
        with running(settings_for(schema_url, ingest_url, "", session_expiry_s=3600)):
            hub_cm = _hub(tmp_path, elder, hub_creds, local, link.port)
            hub = hub_cm.__enter__()
            _wait(lambda: bool(status.messages), 60, "hub up")
            send(0, 2)
            _wait(lambda: len(_stored(schema_url, devices)[devices["band"]]) == 4, 60, "live")
            link.cut()  # the home's internet link goes down
            send(2, 5)
            nbr = f"eldercare/v1/devices/{devices['neighbour']}/events"
            pub.publish(nbr, json.dumps(_message("button", 0, start_ms)).encode())
            pub.wait()
            time.sleep(1.0)
            hub.send_signal(signal.SIGKILL)  # mid-outage
            hub.wait(10)
            hub_cm.__exit__(None, None, None)
            send(5, 10)  # the local broker keeps these for the hub's persistent session
            with _hub(tmp_path, elder, hub_creds, local, link.port):
                time.sleep(2.0)
                link.restore()  # and comes back
                expected: dict[str, list[int]] = {d: [] for d in devices.values()}
                for _, _, device_id, seq in sorted(plan, key=lambda p: p[3]):
                    expected[device_id].append(seq)
                _wait(lambda: _stored(schema_url, devices) == expected, 60, "replay")
                for kind in ("band", "smoke", "button"):
                    assert _first_seen(watcher, devices[kind]) == expected[devices[kind]]
                _wait(lambda: any(b.get("refused") == 1 and b.get("queue_depth") == 0
                                  for _, b in status.messages), 10, "status")  # fmt: skip
    finally:
        watcher.close()
        status.close()
        pub.client.loop_stop()
        link.close()
        upstream.stop()
        stop(local_proc)
    print(f"stored once, in order: {sum(len(v) for v in expected.values())} messages")


def test_low_storage_bound_drops_only_routine_telemetry(
    schema_url: str, device_suffix: str, tmp_path: Path
) -> None:
    devices = _register(schema_url, device_suffix)
    elder = f"el-{device_suffix}"
    hub_creds = issue(schema_url, elder, "--hub")
    dashboard_creds = issue(schema_url, "dashboard", "--service")
    upstream = Upstream(schema_url, tmp_path / "up")
    upstream.start()
    link = Link(upstream.port)
    local_proc = start_mosquitto(local := free_port(), tmp_path / "local")
    pub = Publisher(f"mqtt://127.0.0.1:{local}")
    watcher = Watcher(
        upstream.port, dashboard_creds, "eldercare/v1/devices/+/+", "eldercare/v1/hubs/+/status"
    )
    start_ms = int(time.time() * 1000) - 10 * MINUTE_MS
    try:
        with _hub(tmp_path, elder, hub_creds, local, link.port, max_queue_bytes="3000"):
            status_topic = f"eldercare/v1/hubs/{elder}/status"
            _wait(lambda: any(t == status_topic for t, _ in watcher.messages), 60, "hub up")
            link.cut()
            band, btn = devices["band"], devices["button"]
            for seq in range(60):
                ts = start_ms + seq * 5000
                pub.publish(f"eldercare/v1/devices/{band}/telemetry",
                            json.dumps(_message("band", seq, ts)).encode())  # fmt: skip
                if seq % 10 == 0:
                    pub.publish(f"eldercare/v1/devices/{btn}/events",
                                json.dumps(_message("button", seq // 10, ts)).encode())  # fmt: skip
                    status = {
                        "v": 1,
                        "type": "button",
                        "online": True,
                        "ts": ts,
                        "heartbeat_s": 300,
                    }
                    pub.publish(f"eldercare/v1/devices/{btn}/status", json.dumps(status).encode())
            pub.wait()
            time.sleep(2.0)
            link.restore()
            _wait(lambda: any(t == status_topic and b.get("queue_depth") == 0
                              and b.get("dropped", 0) > 0
                              for t, b in watcher.messages), 60, "drained")  # fmt: skip
            reports = [b for t, b in watcher.messages if t == status_topic]
    finally:
        watcher.close()
        pub.client.loop_stop()
        link.close()
        upstream.stop()
        stop(local_proc)
    got = [b for t, b in watcher.messages if f"/devices/{band}/" in t]
    events = [b for t, b in watcher.messages if t.endswith(f"{btn}/events")]
    statuses = [b for t, b in watcher.messages if t.endswith(f"{btn}/status")]
    assert sorted({b["seq"] for b in events}) == list(range(6))
    assert len({b["ts"] for b in statuses}) == 6
    kept = sorted({b["seq"] for b in got})
    assert 0 < len(kept) < 60
    assert kept == list(range(60 - len(kept), 60)), "the oldest telemetry goes first"
    assert reports[-1].get("dropped") == 60 - len(kept)
    print(f"bound 3000 B: kept {len(kept)} of 60 band readings, dropped {reports[-1]['dropped']}")
