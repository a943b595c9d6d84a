"""Dispatcher console: device press -> alert on every dispatcher's websocket, API and memory.

Starts a private Mosquitto (or uses $MQTT_URL), a scratch schema with a generated district,
and three processes: `eldercare alerting`, `eldercare dashboard` and `eldercare sim run` (the
district's background traffic). Then, in this process:

1. latency: `--clients` dispatcher websockets (one session each) are connected; one SOS
   button press per sample is published and timed until the alert's `open` event reaches
   each client (p50/p99 over every delivery, and over the first delivery per press);
2. the raw ceiling of the same run: a plain broker round trip (publish -> a subscriber);
3. the queue and list API with `--alerts` alerts in the table (p50/p99 per request);
4. the dashboard's memory (RSS) with `--idle` idle websocket clients, and while events
   flood `--stuck` clients that never read (they must be dropped, memory bounded).

    .venv/bin/python bench/bench_dashboard.py --samples 100 --clients 500 --elders 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from dashboard.accounts import Role, new_token, token_hash
from dashboard.queries import users as users_q
from eldercare.broker import free_port, start_mosquitto, stop
from firmware_sim import generate_fleet
from gateway import DeviceType, Event, Fleet, encode_message, fleet_to_dict
from gateway.mqtt import make_client, parse_mqtt_url
from gateway.topics import alert_filter
from ingest.migrate import apply_migrations
from ingest.registry import import_fleet
from ingest.settings import DEFAULT_DATABASE_URL

COOKIE = "eldercare_session"


def _mqtt(url: str) -> Any:
    address = parse_mqtt_url(url)
    client = make_client(address=address)
    client.connect(address.host, address.port)
    client.loop_start()
    return client


def _setup(db: str, elders: int) -> tuple[str, str, str, Fleet]:
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


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "eldercare", "--log-level", "WARNING", *args]
    return subprocess.Popen(cmd, env={**os.environ, **env})


def _sessions(url: str, center_id: str, n: int) -> list[str]:
    """One dispatcher with n sessions (tokens made here: n Argon2 logins would take minutes)."""
    now = int(time.time() * 1000)
    tokens = [new_token() for _ in range(n)]
    with psycopg.connect(url) as conn:
        users_q.add_user(conn, "bench", Role.DISPATCHER, "x", now, center_id=center_id)
        for token in tokens:
            users_q.create_session(conn, "bench", token_hash(token), "csrf", now, now + 86_400_000)
        conn.commit()
    return tokens


def _listen_port() -> int:
    """A free port below the ephemeral range, so no outgoing connection takes it meanwhile."""
    rng = random.Random()
    while True:
        port = rng.randrange(20_000, 30_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _open(addr: str, token: str, *, stuck: bool = False) -> ClientConnection:
    sock = None
    if stuck:  # a small receive window, and nothing read: the server's sends back up
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        host, port = addr.split(":")
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await connect(
        f"ws://{addr}/api/v1/feed",
        sock=sock,
        additional_headers={"Cookie": f"{COOKIE}={token}"},
        compression=None,
        max_queue=1 if stuck else 256,
        open_timeout=60,
        ping_interval=None,
    )


async def _open_many(addr: str, tokens: list[str], **kw: Any) -> list[ClientConnection]:
    out: list[ClientConnection] = []
    for i in range(0, len(tokens), 100):
        out += await asyncio.gather(*(_open(addr, t, **kw) for t in tokens[i : i + 100]))
    return out


async def _latency(
    addr: str, tokens: list[str], mqtt: str, prefix: str, buttons: list[str], gap_s: float
) -> tuple[list[float], list[float], list[float]]:
    """(every websocket delivery, first delivery per press, alert on MQTT per press) in ms."""
    clients = await _open_many(addr, tokens)
    await asyncio.sleep(2.0)
    waiting: dict[str, tuple[float, list[float]]] = {}
    on_mqtt: dict[str, float] = {}
    sub = _mqtt(mqtt)
    subscribed = threading.Event()
    sub.on_subscribe = lambda c, u, m, r, p=None: subscribed.set()
    sub.on_message = lambda c, u, m: on_mqtt.setdefault(
        json.loads(m.payload)["device_id"], time.perf_counter()
    )
    sub.subscribe(alert_filter(prefix), 1)
    subscribed.wait(5)

    async def read(ws: ClientConnection) -> None:
        async for raw in ws:
            t = time.perf_counter()
            msg = json.loads(raw)
            entry = waiting.get(msg["alert"]["device_id"])
            if entry is not None and msg["transition"]["to_status"] == "open":
                entry[1].append((t - entry[0]) * 1000)

    readers = [asyncio.create_task(read(ws)) for ws in clients]
    pub = _mqtt(mqtt)
    every: list[float] = []
    first: list[float] = []
    mqtt_ms: list[float] = []
    for button in buttons:
        now_ms = int(time.time() * 1000)
        topic, payload = encode_message(
            Event(device_id=button, type=DeviceType.BUTTON, seq=1, ts=now_ms, event="press"),
            prefix,
        )
        got: list[float] = []
        t0 = time.perf_counter()
        waiting[button] = (t0, got)
        pub.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 5.0
        while len(got) < len(clients) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        every += got + [float("inf")] * (len(clients) - len(got))
        first.append(min(got) if got else float("inf"))
        mqtt_ms.append((on_mqtt[button] - t0) * 1000 if button in on_mqtt else float("inf"))
        await asyncio.sleep(gap_s)
    for client in (pub, sub):
        client.disconnect()
        client.loop_stop()
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
    return every, first, mqtt_ms


def _raw_round_trip(mqtt: str, prefix: str, n: int, gap_s: float) -> list[float]:
    import queue

    got: queue.Queue[float] = queue.Queue()
    sub = _mqtt(mqtt)
    ready = threading.Event()
    sub.on_subscribe = lambda c, u, m, r, p=None: ready.set()
    sub.on_message = lambda c, u, m: got.put(time.perf_counter())
    sub.subscribe(f"{prefix}raw/+", 1)
    ready.wait(5)
    pub = _mqtt(mqtt)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        pub.publish(f"{prefix}raw/{i}", b"x" * 120, qos=1)
        try:
            out.append((got.get(timeout=5) - t0) * 1000)
        except queue.Empty:
            out.append(float("inf"))
        time.sleep(gap_s)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return out


def _fill_alerts(url: str, n: int, center_id: str) -> None:
    """n alerts over 30 days, all closed but 150 active ones (a busy district's open load)."""
    t0 = int(time.time() * 1000) - 30 * 86_400_000
    step_ms = 30 * 86_400_000 // n
    ts = f"{t0} + g::bigint * {step_ms}"
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO alerts (alert_id, kind, severity, status, elder_id, device_id,"
            " center_id, distance_m, in_coverage, lat, lon, event_ts, raised_ts, updated_ts)"
            " SELECT 'bench-' || g, (ARRAY['sos','fall','wandering','smoke','inactivity',"
            " 'device_offline','low_battery','anomaly'])[1 + g %% 8],"
            " (ARRAY['critical','high','medium','low'])[1 + g %% 4],"
            " CASE WHEN g <= 150 THEN 'open' ELSE 'resolved' END, 'bench-e' || g, 'dev-' || g,"
            f" %s, 100, true, 39.91, 116.37, {ts}, {ts}, {ts}"
            " FROM generate_series(1, %s) AS g",
            (center_id, n),
        )
        conn.commit()
        conn.execute("ANALYZE alerts")
        conn.commit()


def _api_ms(addr: str, token: str, path: str, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=f"http://{addr}", cookies={COOKIE: token}) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            resp = client.get(path)
            out.append((time.perf_counter() - t0) * 1000)
            assert resp.status_code == 200, resp.text
    return out


async def _memory(
    addr: str, pid: int, tokens: list[str], idle: int, stuck: int, url: str, alert_id: str
) -> dict[str, Any]:
    base = _rss_kb(pid)
    idle_clients = await _open_many(addr, tokens[:idle])
    await asyncio.sleep(3.0)
    with_idle = _rss_kb(pid)
    await asyncio.gather(*(ws.close() for ws in idle_clients), return_exceptions=True)
    await asyncio.sleep(3.0)
    after_idle = _rss_kb(pid)
    stuck_clients = await _open_many(addr, tokens[:stuck], stuck=True)
    before_flood = _rss_kb(pid)
    peak = before_flood
    flood_events = 20_000
    flood = asyncio.create_task(asyncio.to_thread(_flood, url, alert_id, flood_events))
    while not flood.done():
        peak = max(peak, _rss_kb(pid))
        await asyncio.sleep(0.2)
    await flood
    for _ in range(25):  # the fan-out finishes; queues fill and clients are dropped
        peak = max(peak, _rss_kb(pid))
        await asyncio.sleep(0.2)
    codes = await asyncio.gather(*(_drain(ws) for ws in stuck_clients))
    await asyncio.sleep(2.0)
    return {
        "base": base,
        "with_idle": with_idle,
        "after_idle": after_idle,
        "before_flood": before_flood,
        "peak": peak,
        "after_flood": _rss_kb(pid),
        "dropped_1013": sum(1 for c in codes if c == 1013),
        "flood_events": flood_events,
    }


def _flood(url: str, alert_id: str, n: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO alert_transitions (alert_id, at_ts, from_status, to_status, center_id,"
            " actor, note) SELECT %s, g, 'open', 'open', 'cc', 'system', repeat('x', 900) || g"
            " FROM generate_series(1, %s) AS g",
            (alert_id, n),
        )


async def _drain(ws: ClientConnection) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 30)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    except TimeoutError:
        await ws.close()
        return None


def _pct(values: list[float]) -> str:
    p50, p99 = np.percentile(values, [50, 99])
    return f"p50 {p50:.1f} ms  p99 {p99:.1f} ms"


def _wait_http(addr: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError("dashboard exited")
        try:
            if httpx.get(f"http://{addr}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("dashboard did not start")
        time.sleep(0.3)


def _print_latency(
    args: argparse.Namespace,
    presses: int,
    every: list[float],
    first: list[float],
    mqtt_ms: list[float],
    raw: list[float],
) -> None:
    missing = sum(1 for v in every if v == float("inf"))
    r50, r99 = np.percentile(raw, [50, 99])
    a50, a99 = np.percentile(every, [50, 99])
    m50, m99 = np.percentile(mqtt_ms, [50, 99])
    print(
        f"press -> alert on the websocket, {args.clients} clients, {presses} presses,"
        f" {len(every)} deliveries, missing {missing}: {_pct(every)}"
    )
    print(f"  first client per press: {_pct(first)}")
    print(f"press -> alert on MQTT (contract §2 feed), same presses: {_pct(mqtt_ms)}")
    print(f"ratio websocket/MQTT alert: p50 {a50 / m50:.1f}x  p99 {a99 / m99:.1f}x")
    print(f"raw broker round trip (ceiling), same run: p50 {r50:.2f} ms  p99 {r99:.2f} ms")
    print(f"ratio websocket/raw: p50 {a50 / r50:.1f}x  p99 {a99 / r99:.1f}x", flush=True)


def _print_memory(args: argparse.Namespace, mem: dict[str, Any]) -> None:
    per = (mem["with_idle"] - mem["base"]) / args.idle
    print(
        f"dashboard RSS: {mem['base'] / 1024:.1f} MiB; with {args.idle} idle websockets"
        f" {mem['with_idle'] / 1024:.1f} MiB ({per:.1f} kB each); after they close"
        f" {mem['after_idle'] / 1024:.1f} MiB"
    )
    print(
        f"{args.stuck} clients that never read, {mem['flood_events']} events of ~1 kB:"
        f" RSS {mem['before_flood'] / 1024:.1f} -> peak {mem['peak'] / 1024:.1f} ->"
        f" {mem['after_flood'] / 1024:.1f} MiB; dropped with 1013: {mem['dropped_1013']}"
    )


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--elders", type=int, default=300)
    parser.add_argument("--speed", type=float, default=20.0, help="district time acceleration")
    parser.add_argument("--gap-s", type=float, default=0.2, help="pause between presses")
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--stuck", type=int, default=50)
    args = parser.parse_args()
    db = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    mqtt = os.environ.get("MQTT_URL", "")
    broker = None
    if not mqtt:
        port = free_port()
        broker = start_mosquitto(port, Path(tempfile.mkdtemp(prefix="bench-mosq-")))
        mqtt = f"mqtt://127.0.0.1:{port}"
    schema, url, prefix, fleet = _setup(db, args.elders)
    center = fleet.care_centers[0].id
    tokens = _sessions(url, center, max(args.clients, args.idle, args.stuck))
    env = {"DATABASE_URL": url, "MQTT_URL": mqtt}
    fleet_path = Path(tempfile.mkdtemp(prefix="bench-fleet-")) / "fleet.json"
    fleet_path.write_text(json.dumps(fleet_to_dict(fleet)), encoding="utf-8")
    addr = f"127.0.0.1:{_listen_port()}"
    procs = [
        _spawn(
            ["alerting", "--prefix", prefix],
            {**env, "ALERTING_CLIENT_ID": f"alerting-{schema}", "ALERTING_SESSION_EXPIRY_S": "0"},
        ),
        _spawn(
            ["dashboard", "--port", addr.split(":")[1], "--prefix", prefix],
            {
                **env,
                "DASHBOARD_MIGRATE_ON_START": "0",
                "DASHBOARD_INSECURE_COOKIES": "1",
                "DASHBOARD_POOL_MAX_SIZE": "24",
            },
        ),
        _spawn(
            [
                "sim",
                "run",
                str(fleet_path),
                "--mqtt-url",
                mqtt,
                "--prefix",
                prefix,
                "--speed",
                str(args.speed),
                "--seed",
                "3",
                "--rate-scale",
                "0",
            ],
            {},
        ),
    ]
    try:
        _wait_http(addr, procs[1])
        time.sleep(15.0)  # the district connects and reaches its steady rate
        buttons = [d.id for d in fleet.devices if d.type is DeviceType.BUTTON][: args.samples]
        every, first, mqtt_ms = uvloop.run(
            _latency(addr, tokens[: args.clients], mqtt, prefix, buttons, args.gap_s)
        )
        raw = _raw_round_trip(mqtt, prefix, len(buttons), args.gap_s)
        print(f"district: {args.elders} elders ({len(fleet.devices)} devices) at {args.speed:g}x")
        _print_latency(args, len(buttons), every, first, mqtt_ms, raw)
        procs[2].terminate()
        _fill_alerts(url, args.alerts, center)
        for path in ("/api/v1/alerts/queue", "/api/v1/alerts?limit=50"):
            print(
                f"GET {path} with {args.alerts} alerts: {_pct(_api_ms(addr, tokens[0], path, 300))}"
            )
        mem = uvloop.run(_memory(addr, procs[1].pid, tokens, args.idle, args.stuck, url, "bench-1"))
        _print_memory(args, mem)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        if broker is not None:
            stop(broker)
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
