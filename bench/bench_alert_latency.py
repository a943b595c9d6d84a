"""Alert latency: device publish -> alert on MQTT, p50/p99, with background device traffic.

Runs the alerting service in-process against a scratch database schema and a Mosquitto
started with the platform's configuration ($MQTT_URL to use another broker), while
`eldercare sim run` drives the simulated district in a separate process (`--speed` times real
time) as background traffic, and presses one SOS button per sample. The raw ceiling, measured
in the same run, is a plain broker round trip (publish -> a subscriber) under the same load;
the ratio says what the platform adds.

    .venv/bin/python bench/bench_alert_latency.py --samples 200 --elders 300 --speed 20

Two fault modes run `eldercare alerting` as separate processes on a private PostgreSQL cluster
and a private Mosquitto, and time with the C clients (`mosquitto_sub -F %U`); their ceiling is
`mosquitto_pub` -> broker -> `mosquitto_sub`, the fastest thing the machine can do:

    --mode outage    p50/p99 press -> alert on the centre topic with the database up, then
                     while it is stopped (alerts must go out from the local outbox), and how
                     long the outbox takes to reach the table once it is back.
    --mode failover  SIGKILL of the active alerting process while presses arrive every
                     100 ms: kill -> first alert from the standby, and presses lost or doubled.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg

from alerting.service import AlertingService
from alerting.settings import AlertingSettings
from eldercare.broker import free_port, start_mosquitto, stop
from firmware_sim import generate_fleet
from gateway import DeviceType, Event, Fleet, encode_message, fleet_to_dict
from gateway.mqtt import make_client, parse_mqtt_url
from gateway.topics import alert_filter
from ingest.migrate import apply_migrations
from ingest.registry import import_fleet
from ingest.settings import DEFAULT_DATABASE_URL


def _client(url: str):  # type: ignore[no-untyped-def]
    address = parse_mqtt_url(url)
    client = make_client(address=address)
    client.connect(address.host, address.port)
    client.loop_start()
    return client


def _background(mqtt: str, prefix: str, fleet: Fleet, speed: float) -> subprocess.Popen[bytes]:
    """The simulated district as a separate process (so it does not share the service's GIL)."""
    path = Path(tempfile.mkdtemp(prefix="bench-fleet-")) / "fleet.json"
    path.write_text(json.dumps(fleet_to_dict(fleet)), encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "eldercare",
        "--log-level",
        "WARNING",
        "sim",
        "run",
        str(path),
        "--mqtt-url",
        mqtt,
        "--prefix",
        prefix,
        "--speed",
        str(speed),
        "--seed",
        "3",
        "--rate-scale",
        "0",
    ]
    return subprocess.Popen(cmd, stderr=subprocess.PIPE)


def _measure(
    url: str, pub_topic_payloads: list[tuple[str, bytes]], sub_filter: str, gap_s: float
) -> list[float]:
    """Publish each (topic, payload) and time the next message on `sub_filter`."""
    got: queue.Queue[float] = queue.Queue()
    sub = _client(url)
    ready = threading.Event()
    sub.on_subscribe = lambda c, u, m, r, p=None: ready.set()
    sub.on_message = lambda c, u, m: got.put(time.perf_counter())
    sub.subscribe(sub_filter, 1)
    ready.wait(5)
    pub = _client(url)
    out = []
    for topic, payload in pub_topic_payloads:
        t0 = time.perf_counter()
        pub.publish(topic, payload, qos=1)
        try:
            out.append((got.get(timeout=5) - t0) * 1000)
        except queue.Empty:
            out.append(float("inf"))
        time.sleep(gap_s)
        while not got.empty():
            got.get()
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return out


def _setup(db: str, mqtt: str, elders: int) -> tuple[str, str, str, Fleet]:
    """A scratch schema with a generated fleet; returns (schema, url, prefix, fleet)."""
    tag = uuid.uuid4().hex[:8]
    schema, prefix = f"bench_{tag}", f"bench-{tag}/"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{db}{'&' if '?' in db else '?'}options=-csearch_path%3D{schema}"
    fleet = generate_fleet(elders, 11)
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn)
    with psycopg.connect(url) as conn:
        import_fleet(conn, fleet)
        conn.commit()
    return schema, url, prefix, fleet


def _report(
    args: argparse.Namespace,
    devices: int,
    bg_rate: float,
    alert_ms: list[float],
    raw_ms: list[float],
) -> None:
    a50, a99 = np.percentile(alert_ms, [50, 99])
    r50, r99 = np.percentile(raw_ms, [50, 99])
    lost = sum(1 for v in alert_ms if v == float("inf"))
    print(
        f"background: simulated district of {args.elders} elders ({devices} devices) at"
        f" {args.speed:g}x, {bg_rate:.0f} device msg/s reaching the alerting service;"
        f" {args.gap_s * 1000:.0f} ms between samples"
    )
    print(
        f"alert latency (publish -> alert on MQTT), n={len(alert_ms)}, missing={lost}:"
        f" p50 {a50:.1f} ms  p99 {a99:.1f} ms"
    )
    print(f"raw broker round trip (ceiling), same load: p50 {r50:.2f} ms  p99 {r99:.2f} ms")
    print(f"ratio alert/raw: p50 {a50 / r50:.1f}x  p99 {a99 / r99:.1f}x")


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--speed", type=float, default=20.0, help="district time acceleration")
    parser.add_argument("--elders", type=int, default=300)
    parser.add_argument("--gap-s", type=float, default=0.1, help="pause between samples")
    parser.add_argument("--mode", choices=("steady", "outage", "failover"), default="steady")
    parser.add_argument(
        "--window-s", type=float, default=20.0, help="failover: seconds of presses after the kill"
    )
    args = parser.parse_args()
    if args.mode != "steady":
        from bench_alert_faults import run_mode

        run_mode(args)
        return
    db = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    broker = None
    mqtt = os.environ.get("MQTT_URL", "")
    if not mqtt:
        port = free_port()
        broker = start_mosquitto(port, Path(tempfile.mkdtemp(prefix="bench-mosq-")))
        mqtt = f"mqtt://127.0.0.1:{port}"
    schema, url, prefix, fleet = _setup(db, mqtt, args.elders)
    settings = AlertingSettings(
        database_url=url,
        mqtt_url=mqtt,
        topic_prefix=prefix,
        client_id=f"alerting-{schema}",
        session_expiry_s=0,
    )
    service = AlertingService(settings)
    stop_service = threading.Event()
    threading.Thread(target=service.run, args=(stop_service,), daemon=True).start()
    service.ready.wait(30)
    bg = _background(mqtt, prefix, fleet, args.speed)
    time.sleep(15.0)  # the district connects and reaches its steady rate
    received_before = service.stats.received
    t_bg = time.monotonic()
    buttons = [d.id for d in fleet.devices if d.type is DeviceType.BUTTON][: args.samples]
    now_ms = int(time.time() * 1000)
    presses = [
        encode_message(
            Event(device_id=b, type=DeviceType.BUTTON, seq=1, ts=now_ms, event="press"), prefix
        )
        for b in buttons
    ]
    alert_ms = _measure(mqtt, presses, alert_filter(prefix), args.gap_s)
    raw = [(f"{prefix}raw/{i}", b"x" * 120) for i in range(len(presses))]
    raw_ms = _measure(mqtt, raw, f"{prefix}raw/+", args.gap_s)
    bg_rate = (service.stats.received - received_before) / (time.monotonic() - t_bg)
    bg.terminate()
    bg.wait(30)
    stop_service.set()
    if broker is not None:
        stop(broker)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    _report(args, len(fleet.devices), bg_rate, alert_ms, raw_ms)


if __name__ == "__main__":
    main()
