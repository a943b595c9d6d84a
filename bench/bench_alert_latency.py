"""Alert latency: device publish -> alert on MQTT, p50/p99, with background device traffic.

Runs the alerting service in-process against the local broker and a scratch database schema,
publishes background telemetry at `--rate` messages/s, and presses one SOS button per
sample. The raw ceiling, measured in the same run, is a plain broker round trip (publish ->
a subscriber) under the same load; the ratio says what the platform adds.

    .venv/bin/python bench/bench_alert_latency.py --samples 200 --rate 300
"""

from __future__ import annotations

import argparse
import os
import queue
import threading
import time
import uuid

import numpy as np
import psycopg

from alerting.service import AlertingService
from alerting.settings import AlertingSettings
from firmware_sim.district import generate_fleet
from gateway import BandTelemetry, DeviceType, Event, Fleet, encode_message
from gateway.mqtt import make_client, parse_mqtt_url
from gateway.topics import alert_filter
from ingest.migrate import apply_migrations
from ingest.registry import import_fleet


def _client(url: str):  # type: ignore[no-untyped-def]
    address = parse_mqtt_url(url)
    client = make_client(address=address)
    client.connect(address.host, address.port)
    client.loop_start()
    return client


def _background(
    url: str, prefix: str, bands: list[tuple[str, float, float]], rate: float, stop: threading.Event
) -> None:
    client = _client(url)
    seq = 0
    period = 1.0 / rate
    next_t = time.monotonic()
    while not stop.is_set():
        for device_id, lat, lon in bands:
            seq += 1
            msg = BandTelemetry(
                device_id=device_id,
                type=DeviceType.BAND,
                seq=seq,
                ts=int(time.time() * 1000),
                lat=lat,
                lon=lon,
                hacc_m=10.0,
                hr_bpm=70,
                steps=5,
                worn=True,
            )
            topic, payload = encode_message(msg, prefix)
            client.publish(topic, payload, qos=0)
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if stop.is_set():
                break
    client.disconnect()
    client.loop_stop()


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
    args: argparse.Namespace, n_bands: int, handled: int, alert_ms: list[float], raw_ms: list[float]
) -> None:
    a50, a99 = np.percentile(alert_ms, [50, 99])
    r50, r99 = np.percentile(raw_ms, [50, 99])
    lost = sum(1 for v in alert_ms if v == float("inf"))
    print(
        f"background: {args.rate:.0f} band msg/s over {n_bands} bands; service handled"
        f" {handled} messages; {args.gap_s * 1000:.0f} ms between samples"
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
    parser.add_argument("--rate", type=float, default=300.0, help="background messages/s")
    parser.add_argument("--elders", type=int, default=300)
    parser.add_argument("--gap-s", type=float, default=0.1, help="pause between samples")
    args = parser.parse_args()
    db = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    mqtt = os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883")
    schema, url, prefix, fleet = _setup(db, mqtt, args.elders)
    settings = AlertingSettings(
        database_url=url,
        mqtt_url=mqtt,
        topic_prefix=prefix,
        client_id=f"alerting-{schema}",
        session_expiry_s=0,
    )
    service = AlertingService(settings)
    stop_service, stop_bg = threading.Event(), threading.Event()
    threading.Thread(target=service.run, args=(stop_service,), daemon=True).start()
    service.ready.wait(30)
    elders = {e.id: e for e in fleet.elders}
    bands = [
        (d.id, elders[d.elder_id].home_lat, elders[d.elder_id].home_lon)
        for d in fleet.devices
        if d.type is DeviceType.BAND
    ]
    bg = threading.Thread(target=_background, args=(mqtt, prefix, bands, args.rate, stop_bg))
    bg.start()
    time.sleep(1.0)
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
    stop_bg.set()
    bg.join()
    stop_service.set()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    _report(args, len(bands), service.stats.received, alert_ms, raw_ms)


if __name__ == "__main__":
    main()
