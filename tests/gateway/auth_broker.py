"""A private Mosquitto run with the configuration `eldercare gateway broker-config` writes,
for a registry in a per-test schema, and small MQTT 5 clients that record what they get."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

import eldercare.cli
from eldercare.broker import broker_reachable, free_port, stop
from ingest.db import connect
from ingest.migrate import apply_migrations

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Done:
    """What one command printed and returned."""

    returncode: int
    stdout: str
    stderr: str


def cli(url: str, *args: str) -> Done:
    """Run `eldercare …` in this process against the registry at `url` (as the shell would)."""
    out, err = io.StringIO(), io.StringIO()
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = eldercare.cli.main(list(args))
    finally:
        if saved is None:
            del os.environ["DATABASE_URL"]
        else:
            os.environ["DATABASE_URL"] = saved
    return Done(code, out.getvalue(), err.getvalue())


def make_registry(url: str, suffix: str, n_devices: int = 3) -> list[str]:
    """Migrate the schema and register one centre, one elder and `n_devices` buttons."""
    with connect(url) as conn:
        apply_migrations(conn)
        conn.autocommit = False
        conn.execute(
            "INSERT INTO care_centers (id, name, lat, lon) VALUES (%s, 'C', 39.9, 116.3)",
            (f"cc-{suffix}",),
        )
        conn.execute(
            "INSERT INTO elders (id, name, home_lat, home_lon) VALUES (%s, 'E', 39.9, 116.3)",
            (f"el-{suffix}",),
        )
        ids = [f"btn-{suffix}-{i}" for i in range(n_devices)]
        for device_id in ids:
            conn.execute(
                "INSERT INTO devices (id, type, elder_id) VALUES (%s, 'button', %s)",
                (device_id, f"el-{suffix}"),
            )
        conn.commit()
    return ids


def issue(url: str, subject: str, *flags: str) -> dict[str, str]:
    """`eldercare gateway creds issue SUBJECT --json [flags]` parsed."""
    done = cli(url, "gateway", "creds", "issue", subject, "--json", *flags)
    assert done.returncode == 0, done.stderr
    out: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


@dataclass
class Broker:
    """A running private broker and its configuration directory."""

    port: int
    conf_dir: Path
    proc: subprocess.Popen[bytes]


@contextmanager
def auth_broker(url: str, conf_dir: Path, *extra: str) -> Iterator[Broker]:
    """`broker-config --out conf_dir --port P [extra]`, then `mosquitto -c` it as is."""
    port = free_port()
    done = cli(url, "gateway", "broker-config", "--out", str(conf_dir), "--port", str(port), *extra)
    assert done.returncode == 0, done.stderr
    log = (conf_dir / "mosquitto.log").open("ab")
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf_dir / "mosquitto.conf")], stdout=log, stderr=log
    )
    log.close()
    deadline = time.monotonic() + 10
    while not broker_reachable(f"mqtt://127.0.0.1:{port}", 0.2):
        assert proc.poll() is None and time.monotonic() < deadline, (
            conf_dir / "mosquitto.log"
        ).read_text()
        time.sleep(0.05)
    while not (conf_dir / "mosquitto.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield Broker(port, conf_dir, proc)
    finally:
        stop(proc)


@dataclass
class Probe:
    """An MQTT 5 client that records its CONNACK, SUBACKs, PUBACKs, messages, disconnects."""

    client: paho.Client
    connacks: list[str] = field(default_factory=list)
    subacks: list[list[int]] = field(default_factory=list)
    pubacks: dict[int, int] = field(default_factory=dict)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    disconnects: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, cond: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        """Poll `cond` until true or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if cond():
                    return True
            time.sleep(0.02)
        return False

    def cut(self) -> bool:
        """Whether the broker has disconnected (or refused) this client."""
        return bool(self.disconnects)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


def probe(
    port: int,
    username: str | None,
    password: str | None,
    *,
    reconnect: bool = False,
    tls: dict[str, Any] | None = None,
) -> Probe:
    """Connect a recording MQTT 5 client (a reconnecting one if `reconnect`)."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{username or 'anon'}-{os.urandom(3).hex()}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    p = Probe(client)
    if username is not None:
        client.username_pw_set(username, password)
    if tls is not None:
        client.tls_set(**tls)

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        with p.lock:
            p.connacks.append(str(rc))

    def on_subscribe(c: Any, u: Any, mid: int, rcs: Any, props: Any) -> None:
        with p.lock:
            p.subacks.append([int(r.value) for r in rcs])

    def on_publish(c: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
        with p.lock:
            p.pubacks[mid] = int(rc.value)

    def on_message(c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        with p.lock:
            p.messages.append((msg.topic, bytes(msg.payload)))

    def on_disconnect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        with p.lock:
            p.disconnects.append((time.monotonic(), str(rc)))
        if not reconnect:
            c.disconnect()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message
    client.on_disconnect = on_disconnect
    client.reconnect_delay_set(1, 1)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    p.wait(lambda: bool(p.connacks or p.disconnects))
    return p
