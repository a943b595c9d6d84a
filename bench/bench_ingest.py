"""Ingest throughput against the raw C->C QoS 1 broker ceiling, in one run.

Prints: the raw ceiling (the C publisher `replay_pub`, unpaced, on each device's own topic ->
Mosquitto -> C subscriber `mosquitto_sub` that only counts, bench/ceiling.py), ingest
throughput (the same C publisher and topics -> committed rows, zero loss), their ratio, the
Python client's own ceiling (the same stream to a paho-mqtt subscriber that only counts) and
the bare decode and COPY rates of the same rows. Cane windows carry 100 samples (2 s at
50 Hz), as a walking cane sends them. Starts its own Mosquitto with gateway/mosquitto.conf
and uses its own database schema.

`--consumers 1,2` also runs that many ingest processes on the shared subscription (as
docker-compose.yml runs 2 replicas), each count on a fresh schema, and prints their combined
rate, the machine's CPU per message by part over the same interval (ingest, PostgreSQL,
Mosquitto, the publisher, the rest, idle) and the budget left for ingest at 0.5 of the raw
ceiling once the broker, the database and the publisher have had theirs (`budget_line`).

Usage: python bench/bench_ingest.py [-n 20000] [--devices 60] [--batch-max 2000]
    [--consumers 1,2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import psycopg
from bench_district import CpuMeter
from ceiling import StreamPublisher

from eldercare.broker import free_port, start_mosquitto, stop
from gateway import (
    BandTelemetry,
    CaneTelemetry,
    CareCenter,
    Device,
    DeviceType,
    Elder,
    Fleet,
    Message,
    SmokeTelemetry,
    encode_message,
)
from ingest.batch import Inbound, build_batch
from ingest.db import BatchWriter, connect
from ingest.migrate import StorageMode, apply_migrations
from ingest.registry import import_fleet, load_registry
from ingest.service import IngestService
from ingest.settings import DEFAULT_DATABASE_URL, IngestSettings, WriteMethod

DATABASE_URL = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


def make_stream(n: int, devices: int, prefix: str) -> tuple[Fleet, list[tuple[str, bytes]]]:
    rng = random.Random(1)
    elders = tuple(Elder(f"el-b{i}", "x", 39.9, 116.3) for i in range(devices))
    types = (DeviceType.BAND, DeviceType.SMOKE, DeviceType.CANE)
    devs = tuple(Device(f"dev-b{i:05d}", types[i % 3], f"el-b{i}") for i in range(devices))
    fleet = Fleet((CareCenter("cc-b", "x", 39.9, 116.3),), elders, devs)
    base = time.time_ns() // 1_000_000 - 3_600_000
    out = []
    for k in range(n):
        d = devs[k % devices]
        seq, ts = k // devices, base + k
        msg: Message
        if d.type is DeviceType.BAND:
            msg = BandTelemetry(
                device_id=d.id,
                type=d.type,
                seq=seq,
                ts=ts,
                battery_pct=80.0,
                lat=39.9,
                lon=116.3,
                hacc_m=8.0,
                hr_bpm=70,
                steps=3,
                worn=True,
            )
        elif d.type is DeviceType.SMOKE:
            msg = SmokeTelemetry(
                device_id=d.id, type=d.type, seq=seq, ts=ts, smoke_db_m=0.0, temp_c=21.0
            )
        else:  # a 2 s window at 50 Hz, in milli-g as canes (and the simulator) send it
            accel = tuple(
                (round(rng.gauss(0, 0.01), 3), round(rng.gauss(0, 0.01), 3), 1.0)
                for _ in range(100)
            )
            msg = CaneTelemetry(
                device_id=d.id, type=d.type, seq=seq, ts=ts, rate_hz=50, accel_g=accel
            )
        out.append(encode_message(msg, prefix))
    return fleet, out


TELEMETRY = ("band_telemetry", "smoke_telemetry", "cane_telemetry")


def _stored(service: IngestService) -> int:
    """Telemetry rows the service has committed (its `ingest_stored_total` counters)."""
    return int(sum(service.metrics.stored.labels(k)._value.get() for k in TELEMETRY))


def _settings(
    pub: StreamPublisher,
    url: str,
    prefix: str,
    client_id: str,
    batch_max: int,
    method: WriteMethod,
) -> IngestSettings:
    """An ingest service on this bench's broker, schema and topic prefix."""
    return IngestSettings(
        database_url=url,
        mqtt_url=f"mqtt://127.0.0.1:{pub.port}",
        topic_prefix=prefix,
        client_id=client_id,
        batch_max=batch_max,
        write_method=method,
    )


def run_ingest(
    pub: StreamPublisher,
    url: str,
    stream: list[tuple[str, bytes]],
    prefix: str,
    batch_max: int,
    method: WriteMethod,
) -> tuple[float, float]:
    """(messages/s published -> committed, CPU seconds of this process per message).

    The process is the ingest service (paho's network thread and the consumer) plus idle
    threads waiting for the C publishers, so its CPU time is ingest's, whatever else the
    machine runs at the same time.
    """
    settings = _settings(pub, url, prefix, f"bench-{uuid.uuid4().hex[:6]}", batch_max, method)
    service = IngestService(settings)
    stop_event = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop_event,), daemon=True)
    thread.start()
    assert service.wait_subscribed(30)
    cpu0 = time.process_time()
    started = pub.publish(stream)
    while _stored(service) < len(stream):
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    pub.wait()
    stop_event.set()
    thread.join(30)
    assert_stored(url, len(stream))
    return len(stream) / elapsed, cpu / len(stream)


def assert_stored(url: str, n: int) -> None:
    """Zero loss: the three telemetry tables hold `n` rows (AssertionError otherwise)."""
    with psycopg.connect(url) as conn:
        stored = sum(
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in TELEMETRY
        )
    assert stored == n, f"loss: stored {stored} of {n}"


def _consumer(settings: IngestSettings, ready: Any, state: Any, stop_event: Any) -> None:
    """One ingest process: the service in a thread, its stored rows and CPU time shared."""
    service = IngestService(settings)
    halt = threading.Event()
    thread = threading.Thread(target=service.run, args=(halt,), daemon=True)
    thread.start()
    if not service.wait_subscribed(30):
        return
    ready.set()
    while not stop_event.wait(0.005):
        state[0] = _stored(service)
        state[1] = time.process_time()
    halt.set()
    thread.join(30)


def run_ingest_processes(
    pub: StreamPublisher,
    url: str,
    stream: list[tuple[str, bytes]],
    prefix: str,
    batch_max: int,
    method: WriteMethod,
    count: int,
    broker_pid: int,
) -> tuple[float, float, dict[str, float]]:
    """`count` ingest processes on the shared subscription (`$share/ingest/...`, as the
    compose file's replicas).

    Returns:
        (messages/s published -> committed, CPU s per message of the processes together,
        the machine's CPU seconds per message over the same interval by part: "ingest",
        "postgresql" (every server process), "mosquitto", "publisher" (replay_pub), "rest"
        (this bench and whatever else ran) and "idle").
    """
    ctx = mp.get_context("spawn")
    stop_event = ctx.Event()
    base = f"bench-{uuid.uuid4().hex[:6]}"
    ready = [ctx.Event() for _ in range(count)]
    state = [ctx.Array("d", 2, lock=False) for _ in range(count)]
    procs = []
    for k in range(count):
        settings = _settings(pub, url, prefix, f"{base}-{k}", batch_max, method)
        proc = ctx.Process(target=_consumer, args=(settings, ready[k], state[k], stop_event))
        proc.start()
        procs.append(proc)
    try:
        for k, event in enumerate(ready):
            assert event.wait(120), f"ingest process {k} did not subscribe"
        time.sleep(0.5)
        meter = CpuMeter(
            {
                "ingest": [p.pid for p in procs if p.pid is not None],
                "postgresql": postgres_pids(),
                "mosquitto": [broker_pid],
            }
        )
        machine0 = psutil.cpu_times()
        cpu0 = sum(st[1] for st in state)
        meter.start()
        started = pub.publish(stream)
        # Started after the meter: all of its CPU time falls in the interval (read at the
        # end even if it has exited, until `pub.wait` reaps it).
        meter.groups["publisher"] = [pub.pids()[-1]]
        while sum(st[0] for st in state) < len(stream):
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        cores = meter.stop()
        machine1 = psutil.cpu_times()
        time.sleep(0.02)  # each process has written its CPU time after its last row
        cpu = sum(st[1] for st in state) - cpu0
        pub.wait()
    finally:
        stop_event.set()
        for proc in procs:
            proc.join(30)
    assert_stored(url, len(stream))
    parts = {g: cores[g] * meter.elapsed_s / len(stream) for g in cores}
    idle = (machine1.idle - machine0.idle) + (machine1.iowait - machine0.iowait)
    busy = sum(machine1) - sum(machine0) - idle
    parts["rest"] = max(0.0, busy / len(stream) - sum(parts.values()))
    parts["idle"] = idle / len(stream)
    return len(stream) / elapsed, cpu / len(stream), parts


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (the postmaster and its children)."""
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def budget_line(raw: float, parts: dict[str, float]) -> str:
    """What the machine leaves ingest per message at half the raw ceiling.

    At 0.5 x `raw` msg/s the machine has `cores / (0.5 x raw)` CPU seconds per message. The
    broker, PostgreSQL and the C publisher need theirs (as measured per message in the same
    ingest run, `parts`), whatever ingest is written in; what is left is the most ingest may
    spend per message for a ratio of 0.5 (other work on the machine, "rest", not counted).
    """
    cores = psutil.cpu_count() or 1
    per_msg = cores / (0.5 * raw)
    others = parts["mosquitto"] + parts["postgresql"] + parts["publisher"]
    return (
        f"budget at 0.5 x raw  {per_msg * 1e6:.0f} us/msg on {cores} cores; Mosquitto "
        f"{parts['mosquitto'] * 1e6:.0f} + PostgreSQL {parts['postgresql'] * 1e6:.0f} + publisher"
        f" {parts['publisher'] * 1e6:.0f} -> at most {(per_msg - others) * 1e6:.0f} us/msg"
        f" for ingest (it used {parts['ingest'] * 1e6:.0f})"
    )


def bare_copy(
    url: str, stream: list[tuple[str, bytes]], batch_max: int, prefix: str
) -> tuple[float, float]:
    """(decode rate, COPY+commit rate) of the same rows, without MQTT."""
    with connect(url) as conn:
        registry = load_registry(conn)
        conn.rollback()
        now = time.time_ns() // 1_000_000
        items = [Inbound(t, p, now) for t, p in stream]
        t0 = time.perf_counter()
        batches = [
            build_batch(items[i : i + batch_max], registry, prefix)
            for i in range(0, len(items), batch_max)
        ]
        t1 = time.perf_counter()
        writer = BatchWriter(WriteMethod.COPY, StorageMode.POSTGRESQL)
        for batch in batches:
            writer.write(conn, batch)
        t2 = time.perf_counter()
    return len(items) / (t1 - t0), len(items) / (t2 - t1)


def schema(base: str, fleet: Fleet) -> tuple[str, str]:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{name}"
    with connect(url) as conn:
        apply_migrations(conn)
        import_fleet(conn, fleet)
    return name, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--devices", type=int, default=60)
    parser.add_argument("--batch-max", type=int, default=2000)
    parser.add_argument("--write-method", default="copy", choices=["copy", "unnest"])
    parser.add_argument(
        "--consumers",
        default="",
        help="comma-separated counts of ingest processes on the shared subscription, e.g. 1,2"
        " (each count on a fresh schema; default: the service in this process only)",
    )
    args = parser.parse_args()
    port = free_port()
    broker = start_mosquitto(port, Path(tempfile.mkdtemp(prefix="bench-mosq-")))
    schemas = []
    try:
        fleet, stream = make_stream(args.n, args.devices, "bench/")
        pub = StreamPublisher(port)
        raw = pub.ceiling(stream)
        paho_rate, paho_cpu = pub.paho_ceiling(stream)
        crt = pub.awscrt_ceiling(stream)
        name, url = schema(DATABASE_URL, fleet)
        schemas.append(name)
        ingest, cpu_per_msg = run_ingest(
            pub, url, stream, "bench/", args.batch_max, WriteMethod(args.write_method)
        )
        name2, url2 = schema(DATABASE_URL, fleet)
        schemas.append(name2)
        decode_rate, copy_rate = bare_copy(url2, stream, args.batch_max, "bench/")
        assert copy_rate > 0
        sizes: dict[str, list[int]] = {}
        for _, payload in stream:
            sizes.setdefault(json.loads(payload)["type"], []).append(len(payload))
        mean = {k: sum(v) // len(v) for k, v in sizes.items()}
        print(
            f"messages            {args.n} ({args.devices} devices: band, smoke, cane; mean "
            f"payload bytes {mean['band']}, {mean['smoke']}, {mean['cane']})"
        )
        print(f"raw QoS 1 ceiling   {raw:10.0f} msg/s  (replay_pub -> mosquitto -> mosquitto_sub)")
        print(f"ingest              {ingest:10.0f} msg/s  (replay_pub -> committed, zero loss)")
        print(f"ingest / raw C->C   {ingest / raw:10.2f}  (of the raw QoS 1 ceiling above)")
        print(
            f"paho-mqtt alone     {paho_rate:10.0f} msg/s  ({paho_rate / raw:.2f} of the raw"
            f" ceiling, {paho_cpu * 1e6:.0f} us CPU/msg: a subscriber that only counts)"
        )
        print(f"ingest / paho alone {ingest / paho_rate:10.2f}")
        if crt is None:
            print("awscrt alone        (not installed: pip install awscrt to compare)")
        else:
            print(
                f"awscrt alone        {crt[0]:10.0f} msg/s  ({crt[0] / raw:.2f} of the raw"
                f" ceiling, {crt[1] * 1e6:.0f} us CPU/msg: awscrt's C MQTT 5 client, counting)"
            )
        print(f"ingest CPU          {cpu_per_msg * 1e6:10.0f} us/msg (paho thread + consumer)")
        for count in [int(c) for c in args.consumers.split(",") if c]:
            # A prefix per run: a finished run's persistent sessions keep their share of the
            # shared subscription, and the broker would queue part of this run's messages
            # for them.
            prefix_n = f"bench{count}/"
            _, stream_n = make_stream(args.n, args.devices, prefix_n)
            name_n, url_n = schema(DATABASE_URL, fleet)
            schemas.append(name_n)
            rate_n, cpu_n, parts = run_ingest_processes(
                pub,
                url_n,
                stream_n,
                prefix_n,
                args.batch_max,
                WriteMethod(args.write_method),
                count,
                broker.pid,
            )
            print(
                f"ingest x{count} proc   {rate_n:10.0f} msg/s  ({rate_n / raw:.2f} of the raw"
                f" ceiling, {cpu_n * 1e6:.0f} us CPU/msg over the processes; zero loss)"
            )
            print(
                "  machine per msg   "
                + ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in parts.items())
            )
            print("  " + budget_line(raw, parts))
        print(f"decode only         {decode_rate:10.0f} msg/s  (gateway.decode + batching)")
        print(f"bare COPY + commit  {copy_rate:10.0f} rows/s (batches of {args.batch_max})")
    finally:
        stop(broker)
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            for name in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


if __name__ == "__main__":
    main()
