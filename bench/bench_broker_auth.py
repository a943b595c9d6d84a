"""Broker cost of auth and TLS: connection set-up rate and QoS 1 publish throughput, in one
run, against Mosquitto with auth and TLS off (the shipped development configuration) and on
(the configuration `eldercare gateway broker-config` writes, password file + ACL, TLS 1.2+).

Registers its own devices in a fresh database schema, issues them secrets, and starts both
brokers itself. Prints one line per mode.

Usage: python bench/bench_broker_auth.py [--connects 300] [--messages 20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from eldercare.broker import broker_reachable, free_port, start_mosquitto, stop
from gateway.accounts import issue_account, sync_files, write_atomically
from gateway.acl import AccountKind, TlsFiles, render_conf
from gateway.certs import make_ca, make_server_cert
from ingest.migrate import apply_migrations

Login = tuple[str, str] | None


def _nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    # As every platform client does (gateway.mqtt): Nagle off, or QoS 1 waits ~40 ms per ack.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _client(login: Login, ca: Path | None) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"b-{uuid.uuid4().hex[:10]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_socket_open = _nodelay
    if login is not None:
        client.username_pw_set(*login)
    if ca is not None:
        client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    return client


def connect_rate(port: int, logins: list[Login], ca: Path | None) -> float:
    """Connections set up per second: TCP (+ TLS) + CONNECT/CONNACK, one after another."""
    start = time.perf_counter()
    for login in logins:
        done = threading.Event()
        client = _client(login, ca)
        client.on_connect = lambda c, u, f, rc, p, d=done: d.set()
        client.connect("127.0.0.1", port)
        while not done.is_set():
            client.loop(0.005)
        client.disconnect()
        client.loop(0.01)
    return len(logins) / (time.perf_counter() - start)


def publish_rate(port: int, topic: str, n: int, pub: Login, sub: Login, ca: Path | None) -> float:
    """QoS 1 messages per second from one device to one subscriber (publish -> delivered)."""
    got = threading.Event()
    count = [0]

    def on_message(c: Any, u: Any, m: Any) -> None:
        count[0] += 1
        if count[0] >= n:
            got.set()

    reader = _client(sub, ca)
    reader.on_message = on_message
    subscribed = threading.Event()
    reader.on_subscribe = lambda *a: subscribed.set()
    reader.on_connect = lambda c, *a: c.subscribe(topic, 1)
    reader.connect("127.0.0.1", port)
    reader.loop_start()
    subscribed.wait(10)
    writer = _client(pub, ca)
    writer.max_inflight_messages_set(1000)
    writer.connect("127.0.0.1", port)
    writer.loop_start()
    payload = b'{"v":1,"type":"button","seq":1,"ts":1764316800000,"event":"press"}' * 4
    start = time.perf_counter()
    for _ in range(n):
        writer.publish(topic, payload, qos=1)
    got.wait(120)
    rate = count[0] / (time.perf_counter() - start)
    for c in (writer, reader):
        c.disconnect()
        c.loop_stop()
    return rate


def _registry(url: str, n: int) -> tuple[list[tuple[str, str]], tuple[str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn)
        conn.execute(
            "INSERT INTO elders (id, name, home_lat, home_lon) VALUES ('el-b', 'E', 39.9, 116.3)"
        )
        ids = [f"btn-bench-{i}" for i in range(n)]
        conn.execute(
            "INSERT INTO devices (id, type, elder_id) SELECT unnest(%s::text[]), 'button', 'el-b'",
            (ids,),
        )
        devices = []
        for device_id in ids:
            cred = issue_account(conn, AccountKind.DEVICE, device_id)
            devices.append((device_id, cred.password.get_secret_value()))
        svc = issue_account(conn, AccountKind.SERVICE, "ingest")
    return devices, (svc.username, svc.password.get_secret_value())


def main() -> None:
    """Run every mode and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=300)
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    work = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        devices, svc = _registry(url, args.connects)
        now = dt.datetime.now(dt.UTC)
        ca = make_ca("bench CA", now)
        server = make_server_cert(ca, ["localhost", "127.0.0.1"], now)
        (work / "tls").mkdir()
        for stem, issued in (("ca", ca), ("server", server)):
            write_atomically(work / "tls" / f"{stem}.crt", issued.cert_pem.decode(), 0o644)
            write_atomically(work / "tls" / f"{stem}.key", issued.key_pem.decode())
        plain_port, auth_port, tls_port = free_port(), free_port(), free_port()
        procs.append(start_mosquitto(plain_port, work / "plain"))
        tls = TlsFiles(
            work / "tls" / "ca.crt", work / "tls" / "server.crt", work / "tls" / "server.key"
        )
        conf_dir = work / "auth"
        conf_dir.mkdir()
        root = os.geteuid() == 0
        conf = render_conf(
            conf_dir,
            port=auth_port,
            tls=tls,
            tls_port=tls_port,
            tls_bind="127.0.0.1",
            run_as="root" if root else None,
        )
        write_atomically(conf_dir / "mosquitto.conf", conf)
        with psycopg.connect(url, autocommit=True) as conn:
            sync_files(conn, conf_dir)
        procs.append(
            subprocess.Popen(
                ["mosquitto", "-c", str(conf_dir / "mosquitto.conf")], stderr=subprocess.DEVNULL
            )
        )
        while not broker_reachable(f"mqtt://127.0.0.1:{tls_port}", 0.2):
            time.sleep(0.05)
        dev_id, dev_secret = devices[0]
        topic = f"eldercare/v1/devices/{dev_id}/events"
        modes: list[tuple[str, int, bool, Path | None]] = [
            ("anonymous, plain", plain_port, False, None),
            ("auth + ACL, plain", auth_port, True, None),
            ("auth + ACL + TLS", tls_port, True, work / "tls" / "ca.crt"),
        ]
        for name, port, auth, ca_path in modes:
            logins: list[Login] = list(devices) if auth else [None] * len(devices)
            conn_s = connect_rate(port, logins, ca_path)
            pub = (dev_id, dev_secret) if auth else None
            msg_s = publish_rate(port, topic, args.messages, pub, svc if auth else None, ca_path)
            print(f"{name:<20} connections {conn_s:8.0f}/s   QoS 1 publish {msg_s:8.0f} msg/s")
    finally:
        for proc in procs:
            stop(proc)
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
