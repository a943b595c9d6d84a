"""Alerting throughput per message kind against the raw C->C QoS 1 ceiling, in one run.

For each kind (band fixes with heart rate, 2 s cane windows at 50 Hz, band events) prints: the
raw ceiling of the same stream (the C publisher `replay_pub`, unpaced, on each device's own
topic -> Mosquitto with the shipped config -> a C subscriber that only counts,
bench/ceiling.py), the alerting service draining it (the same publisher -> Mosquitto ->
alerting, from the first publish until the service has handled the last), and the ratio. The
publisher sends far faster than alerting takes, so the broker holds a backlog that alerting
drains, as after a gateway's replay or a restart. The Python client's own ceiling (the same
stream to a paho-mqtt subscriber that only counts) is printed first: no process that receives
through paho goes faster.
Every band's elder has an anomaly baseline before the timed part, as in steady operation.

`--workers 1,2` runs the service as 1, then 2 partition processes (alerting.partition: each
receives its own devices' telemetry, by per-device subscriptions, and every event and status,
handling its own elders'); a kind counts as drained when the workers together have handled
every message and scored its heart rates. The machine's load average at
the start is printed: figures taken while other work runs are lower bounds.

`--ingest` runs `eldercare ingest` beside it (its own process, at INGEST_NICE as deployed, on
the same broker, topics and database), so alerting shares the machine with storage as it
does in production; how many messages ingest had stored by the end is printed.

Usage: python bench/bench_alerting.py [--bands 200] [--per-device 200] [--canes 100]
    [--workers 1,2] [--ingest]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from bench_district import make_schema, metric, wait_ingest
from ceiling import Stream, StreamPublisher

from alerting.service import AlertingService
from alerting.settings import AlertingSettings
from eldercare.broker import free_port, start_mosquitto, stop
from gateway import (
    BandTelemetry,
    CaneTelemetry,
    CareCenter,
    Device,
    DeviceType,
    Elder,
    Event,
    Fleet,
    encode_message,
)
from ingest.settings import DEFAULT_DATABASE_URL

DATABASE_URL = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
PREFIX = "benchalert/"
RATIO = (
    "ratio: alerting msg/s / raw QoS 1 ceiling (the same stream and topics: replay_pub -> broker"
    " -> mosquitto_sub)"
)
HOME = (39.93, 116.37)


def make_fleet(bands: int, canes: int) -> Fleet:
    elders = tuple(Elder(f"el-a{i}", "x", HOME[0], HOME[1]) for i in range(max(bands, canes)))
    devices = [Device(f"band-a{i:05d}", DeviceType.BAND, f"el-a{i}") for i in range(bands)]
    devices += [Device(f"cane-a{i:05d}", DeviceType.CANE, f"el-a{i}") for i in range(canes)]
    return Fleet((CareCenter("cc-a", "x", HOME[0], HOME[1]),), elders, tuple(devices))


def fixes(fleet: Fleet, per_device: int, seq0: int, ts0: int, rng: random.Random) -> Stream:
    bands = [d for d in fleet.devices if d.type is DeviceType.BAND]
    out = []
    for k in range(per_device):
        for d in bands:
            fix = BandTelemetry(
                device_id=d.id,
                type=d.type,
                seq=seq0 + k,
                ts=ts0 + k * 1000,
                battery_pct=80.0,
                lat=HOME[0] + rng.uniform(-1e-4, 1e-4),
                lon=HOME[1] + rng.uniform(-1e-4, 1e-4),
                hacc_m=8.0,
                hr_bpm=int(rng.gauss(72, 5)),
                steps=rng.randint(0, 30),
                worn=True,
            )
            out.append(encode_message(fix, PREFIX))
    return out


def windows(fleet: Fleet, per_device: int, ts0: int, rng: random.Random) -> Stream:
    """2 s windows at 50 Hz (100 samples), a walking cane's rhythm."""
    canes = [d for d in fleet.devices if d.type is DeviceType.CANE]
    out = []
    for k in range(per_device):
        for d in canes:
            accel = tuple(
                (
                    round(rng.gauss(0, 0.05), 3),
                    round(0.2 * math.sin(i / 5), 3),
                    round(1 + rng.gauss(0, 0.05), 3),
                )
                for i in range(100)
            )
            window = CaneTelemetry(
                device_id=d.id, type=d.type, seq=k, ts=ts0 + k * 2000, rate_hz=50, accel_g=accel
            )
            out.append(encode_message(window, PREFIX))
    return out


def events(fleet: Fleet, per_device: int, seq0: int, ts0: int) -> Stream:
    bands = [d for d in fleet.devices if d.type is DeviceType.BAND]
    return [
        encode_message(
            Event(
                device_id=d.id,
                type=d.type,
                seq=seq0 + k,
                ts=ts0 + k * 1000 + 500,
                event="worn" if k % 2 else "removed",
            ),
            PREFIX,
        )
        for k in range(per_device)
        for d in bands
    ]


def know_cane_clocks(engine: Any, cane_ids: list[str], ts0: int) -> None:
    """Give each cane the clock offset steady operation would have measured.

    The windows of a timed burst are spread over minutes of device time but arrive within a
    second or two; a cane heard for the first time by such a burst has its offset estimated
    from the burst itself (the smallest receive - device time), which squeezes the windows
    onto one moment and makes its cap ignore most of them. A sample taken before the burst,
    for a device time later than all of the burst's, is what a live cane gives.
    """
    now = int(time.time() * 1000)
    for cane_id in cane_ids:
        engine.clocks.observe(cane_id, ts0 + 3_600_000, -1, now)


class Workers:
    """N partition processes of the service, each reporting its progress in shared memory."""

    def __init__(self, url: str, port: int, count: int, ts0: int) -> None:
        ctx = mp.get_context("spawn")
        self.stop = ctx.Event()
        self.ready = [ctx.Event() for _ in range(count)]
        # Per worker: received, heart rates pending, baselines, errors + invalid, received
        # but another partition's.
        self.state = [ctx.Array("q", 5, lock=False) for _ in range(count)]
        client = f"bench-alerting-{uuid.uuid4().hex[:6]}"
        self.procs = [
            ctx.Process(
                target=_worker,
                args=(url, port, k, count, client, ts0, self.ready[k], self.state[k], self.stop),
                daemon=True,
            )
            for k in range(count)
        ]
        for proc in self.procs:
            proc.start()
        for k, ready in enumerate(self.ready):
            assert ready.wait(180), f"alerting worker {k} did not become ready"

    def handled(self) -> int:
        """Messages handled by their own partition, over every worker (each worker receives
        its own devices' telemetry and every event: the others' it only acknowledges)."""
        return sum(int(s[0]) - int(s[4]) for s in self.state)

    def busy(self) -> bool:
        """Whether a worker still has heart rates to score."""
        return any(s[1] for s in self.state)

    def fitted(self) -> int:
        """Elders with an anomaly baseline over every worker."""
        return sum(int(s[2]) for s in self.state)

    def errors(self) -> int:
        return sum(int(s[3]) for s in self.state)

    def close(self) -> None:
        self.stop.set()
        for proc in self.procs:
            proc.join(20)


def _worker(
    url: str,
    port: int,
    index: int,
    count: int,
    client: str,
    ts0: int,
    ready: Any,
    state: Any,
    stop: Any,
) -> None:
    """One partition: the service in a thread, its bands taught a history, progress shared."""
    settings = AlertingSettings(
        database_url=url,
        mqtt_url=f"mqtt://127.0.0.1:{port}",
        topic_prefix=PREFIX,
        client_id=client,
        share_group="",
        standby=False,
        metrics_port=None,
        session_expiry_s=0,  # no queue kept for a finished run's session
        partitions=count,
        partition=index,
    )
    service = AlertingService(settings)
    halt = threading.Event()
    thread = threading.Thread(target=service.run, args=(halt,), daemon=True)
    thread.start()
    if not service.ready.wait(120):
        return
    engine = service.engine
    assert engine is not None
    rng = random.Random(index)
    types = engine.device_types()
    know_cane_clocks(engine, [d for d, t in types.items() if t is DeviceType.CANE], ts0)
    for device_id, dtype in types.items():
        device = engine.device(device_id)
        if dtype is DeviceType.BAND and device is not None:
            for k in range(250):
                ts = ts0 - (250 - k) * 60_000
                hr, steps = rng.gauss(72, 5), rng.randint(0, 30)
                engine.anomaly.learn(device.elder_id, ts, hr, steps, 60_000)
    ready.set()
    while not stop.wait(0.005):
        state[0] = service.stats.received
        state[1] = engine.anomaly.pending()
        state[2] = engine.anomaly.baselines()
        state[3] = service.stats.errors + service.stats.invalid
        state[4] = service.stats.other_partition
    halt.set()
    thread.join(10)


def drain_workers(pub: StreamPublisher, workers: Workers, stream: Stream) -> float:
    """Messages/s from the first C publish until the workers have handled the last."""
    target = workers.handled() + len(stream)
    started = pub.publish(stream)
    while workers.handled() < target or workers.busy():
        time.sleep(0.002)
    rate = len(stream) / (time.perf_counter() - started)
    pub.wait()
    return rate


def run_workers(
    url: str,
    pub: StreamPublisher,
    count: int,
    fleet: Fleet,
    kinds: dict[str, Stream],
    ts0: int,
) -> dict[str, float]:
    """Msg/s per kind with `count` partition processes (anomaly baselines first)."""
    rng = random.Random(2)
    workers = Workers(url, pub.port, count, ts0)
    try:
        wearers = len({d.elder_id for d in fleet.devices if d.type is DeviceType.BAND})
        drain_workers(pub, workers, fixes(fleet, 1, 0, ts0, rng))
        while workers.fitted() < wearers:
            time.sleep(0.01)
        out = {kind: drain_workers(pub, workers, stream) for kind, stream in kinds.items()}
        assert workers.errors() == 0, "errors or invalid messages in a worker"
        return out
    finally:
        workers.close()


def report_workers(
    database: Callable[[], AbstractContextManager[str]],
    pub: StreamPublisher,
    counts: list[int],
    fleet: Fleet,
    kinds: dict[str, Stream],
    raw: dict[str, float],
    ts0: int,
) -> None:
    """Print msg/s per kind for each worker count beside the raw ceiling of the same run.

    `database()` gives each worker count a fresh database: what ingest stored in one must not
    be caught up on, as already seen, by the next.
    """
    load = os.getloadavg()
    print(
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores"
    )
    rates = {}
    for n in counts:
        with database() as url:
            rates[n] = run_workers(url, pub, n, fleet, kinds, ts0)
    print(
        f"{'kind':20s} {'workers':>7s} {'messages':>9s} {'raw C->C':>10s}"
        f" {'alerting':>10s} {'ratio':>6s}"
    )
    for kind, stream in kinds.items():
        for n in counts:
            rate = rates[n][kind]
            print(
                f"{kind:20s} {n:7d} {len(stream):9d} {raw[kind]:10.0f} {rate:10.0f}"
                f" {rate / raw[kind]:6.2f}"
            )
    print(RATIO)


def drain(pub: StreamPublisher, service: AlertingService, stream: Stream) -> float:
    """Messages/s from the first C publish until the service has handled the last."""
    target = service.stats.received + len(stream)
    assert service.engine is not None
    started = pub.publish(stream)
    while service.stats.received < target or service.engine.anomaly.pending():
        time.sleep(0.005)  # this thread takes the service's GIL: not too often
    rate = len(stream) / (time.perf_counter() - started)
    pub.wait()
    return rate


def warm(
    service: AlertingService, fleet: Fleet, pub: StreamPublisher, ts0: int, rng: random.Random
) -> None:
    """Give every band a baseline (250 learned samples) and a live fix."""
    assert service.engine is not None
    bands = [d for d in fleet.devices if d.type is DeviceType.BAND]
    canes = [d.id for d in fleet.devices if d.type is DeviceType.CANE]
    know_cane_clocks(service.engine, canes, ts0)
    for d in bands:
        for k in range(250):
            ts = ts0 - (250 - k) * 60_000
            hr, steps = rng.gauss(72, 5), rng.randint(0, 30)
            service.engine.anomaly.learn(d.elder_id, ts, hr, steps, 60_000)
    drain(pub, service, fixes(fleet, 1, 0, ts0, rng))


@contextmanager
def fresh_database(fleet: Fleet, port: int, work: Path, ingest: bool) -> Iterator[str]:
    """A new schema with the fleet registered (and ingest beside it when `ingest`); its URL."""
    name, url = make_schema(fleet)
    try:
        if not ingest:
            yield url
            return
        with ingest_beside(url, port, work) as metrics:
            yield url
            stored = metric(metrics, "ingest_stored_total")
            print(f"  (ingest beside it had stored {stored:.0f} messages by the end)")
    finally:
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextmanager
def ingest_beside(url: str, port: int, work: Path) -> Iterator[int]:
    """`eldercare ingest` on the bench's broker, prefix and schema; yields its metrics port."""
    metrics = free_port()
    env = os.environ | {
        "DATABASE_URL": url,
        "MQTT_URL": f"mqtt://127.0.0.1:{port}",
        "INGEST_TOPIC_PREFIX": PREFIX,
        "INGEST_CLIENT_ID": f"bench-ingest-{uuid.uuid4().hex[:6]}",
        "INGEST_METRICS_PORT": str(metrics),
        "INGEST_SESSION_EXPIRY_S": "0",  # no queue kept for a finished phase's session
        "ELDERCARE_LOG_LEVEL": "WARNING",
    }
    with open(work / "ingest.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "eldercare", "ingest"], env=env, stdout=log, stderr=log
        )
        try:
            wait_ingest(metrics, port, PREFIX, proc, time.monotonic())
            yield metrics
        finally:
            stop(proc, 30.0)  # SIGTERM, then SIGKILL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bands", type=int, default=200)
    parser.add_argument("--per-device", type=int, default=200, help="fixes per band")
    parser.add_argument("--canes", type=int, default=100)
    parser.add_argument("--windows", type=int, default=100, help="windows per cane")
    parser.add_argument(
        "--workers",
        default="",
        help="comma-separated partition process counts, e.g. 1,2 (default: the service in"
        " this process, as before)",
    )
    parser.add_argument(
        "--ingest", action="store_true", help="run `eldercare ingest` beside it, as deployed"
    )
    args = parser.parse_args()
    rng = random.Random(1)
    fleet = make_fleet(args.bands, args.canes)
    now = int(time.time() * 1000)
    ts0 = now - 4 * 3_600_000
    kinds = {
        "band fixes (hr)": fixes(fleet, args.per_device, 1, ts0 + 60_000, rng),
        "cane windows 2 s": windows(fleet, args.windows, ts0, rng),
        "band events": events(fleet, args.per_device, 100_000, ts0 + 60_000),
    }
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-mosq-"))
    broker = start_mosquitto(port, work)
    stop_event = threading.Event()
    dbs = ExitStack()
    try:
        pub = StreamPublisher(port)
        raw = {kind: pub.ceiling(stream) for kind, stream in kinds.items()}
        paho = {kind: pub.paho_ceiling(stream)[0] for kind, stream in kinds.items()}
        print(
            "paho-mqtt alone (a subscriber that only counts), msg/s: "
            + ", ".join(f"{kind} {rate:.0f}" for kind, rate in paho.items())
        )
        crt = {kind: pub.awscrt_ceiling(stream) for kind, stream in kinds.items()}
        print(
            "awscrt alone (C MQTT 5 client, a Python callback that only counts), msg/s: "
            + ", ".join(f"{k} {r[0]:.0f}" for k, r in crt.items() if r is not None)
            if all(r is not None for r in crt.values())
            else "awscrt alone: not installed (pip install awscrt to compare)"
        )

        def database() -> AbstractContextManager[str]:
            return fresh_database(fleet, port, work, args.ingest)

        if args.workers:
            counts = [int(n) for n in args.workers.split(",")]
            report_workers(database, pub, counts, fleet, kinds, raw, ts0)
            return
        url = dbs.enter_context(database())
        settings = AlertingSettings(
            database_url=url,
            mqtt_url=f"mqtt://127.0.0.1:{port}",
            topic_prefix=PREFIX,
            client_id=f"bench-alerting-{uuid.uuid4().hex[:6]}",
            share_group="",
            standby=False,
            metrics_port=None,
        )
        service = AlertingService(settings)
        thread = threading.Thread(target=service.run, args=(stop_event,), daemon=True)
        thread.start()
        assert service.ready.wait(120), "alerting did not become ready"
        warm(service, fleet, pub, ts0, rng)
        print(f"devices             {args.bands} bands, {args.canes} canes")
        print(f"{'kind':20s} {'messages':>9s} {'raw C->C':>10s} {'alerting':>10s} {'ratio':>6s}")
        for kind, stream in kinds.items():
            rate = drain(pub, service, stream)
            print(
                f"{kind:20s} {len(stream):9d} {raw[kind]:10.0f} {rate:10.0f}"
                f" {rate / raw[kind]:6.2f}"
            )
        print(RATIO)
        assert service.stats.errors == 0 and service.stats.invalid == 0, service.stats
    finally:
        stop_event.set()
        dbs.close()
        stop(broker)


if __name__ == "__main__":
    main()
