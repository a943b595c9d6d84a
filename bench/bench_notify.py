"""Family notifications: alert raised -> Web Push request at a local push-service stand-in.

A scratch schema with a generated district, N family members each with one browser push
subscription (spread over the elders), the notifier (`eldercare notify`) in its own process,
and a burst of alerts raised as the alerting service raises them (`alerting.store`). Reports
p50/p99 from each raise to the arrival of each push request, deliveries per second, and, in the
same run, a bare HTTP POST loop to the same stand-in with as many threads as the notifier's.

    .venv/bin/python bench/bench_notify.py --members 10000 --alerts 1000
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from alerting import store
from alerting.model import Raise, Trigger
from firmware_sim import generate_fleet
from gateway.contract import AlertKind, Severity
from ingest.migrate import apply_migrations
from ingest.registry import import_fleet
from ingest.settings import DEFAULT_DATABASE_URL

ROOT = Path(__file__).resolve().parents[1]


class Receiver:
    """The push-service stand-in: answers 201 and keeps each path's arrival time."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, float]] = []
        self.lock = threading.Lock()
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                now = time.time()
                with state.lock:
                    state.arrivals.append((self.path, now))
                self.send_response(201)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        ThreadingHTTPServer.request_queue_size = 1024
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _setup(db: str, elders: int, members: int, push_url: str) -> tuple[str, str, list[str]]:
    schema = f"bench_notify_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{db}{'&' if '?' in db else '?'}options=-csearch_path%3D{schema}"
    fleet = generate_fleet(elders, 11)
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn)
    elder_ids = [e.id for e in fleet.elders]
    keys = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    with psycopg.connect(url) as conn:
        import_fleet(conn, fleet)
        now = int(time.time() * 1000)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO users (username, role, password_hash, created_ts)"
                " VALUES (%s, 'family', 'x', %s)",
                [(f"fam{i:05d}", now) for i in range(members)],
            )
            cur.execute(
                "INSERT INTO user_elders (user_id, elder_id) SELECT u.id, (%s::text[])"
                "[1 + (row_number() OVER (ORDER BY u.id) - 1) %% %s] FROM users AS u",
                (elder_ids, len(elder_ids)),
            )
            cur.execute(
                "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, created_ts)"
                " SELECT id, %s || '/p/' || id, %s, %s, %s FROM users",
                (push_url, _b64(keys), _b64(os.urandom(16)), now),
            )
        conn.commit()
    return schema, url, elder_ids


def _members_of(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT user_id, elder_id FROM user_elders").fetchall()
    return {f"/p/{u}": e for u, e in rows}


def _raise(url: str, elder_ids: list[str], center: str) -> dict[str, float]:
    raised: dict[str, float] = {}
    with psycopg.connect(url) as conn:
        for elder in elder_ids:
            now = int(time.time() * 1000)
            trig = Trigger(AlertKind.SOS, Severity.CRITICAL, f"btn-{elder}", now, "bench")
            store.raise_alert(
                conn, Raise(elder_id=elder, trigger=trig, lat=39.93, lon=116.37),
                lambda lat, lon: (center, 100.0, True, False), lambda c, lat, lon: (100.0, True),
                now,
            )  # fmt: skip
            raised[elder] = time.time()  # committed
    return raised


def _bare_loop(target: str, n: int, threads: int) -> float:
    body = os.urandom(400)  # the size of an encrypted alert
    local = threading.local()

    def post(i: int) -> None:
        session = getattr(local, "s", None) or requests.Session()
        local.s = session
        session.post(f"{target}/bare/{i}", data=body, timeout=10)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, range(n)))
    return n / (time.perf_counter() - start)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--alerts", type=int, default=1_000, help="elders with one alert each")
    parser.add_argument("--workers", type=int, default=32, help="HTTP threads per process")
    parser.add_argument("--processes", type=int, default=1, help="notifier processes")
    args = parser.parse_args()
    db = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    rx = Receiver()
    schema, url, elder_ids = _setup(db, args.alerts, args.members, rx.url)
    with psycopg.connect(url) as conn:
        center = str(conn.execute("SELECT id FROM care_centers LIMIT 1").fetchone()[0])  # type: ignore[index]
    env = {**os.environ, "DATABASE_URL": url, "NOTIFY_ALLOW_HTTP_LOOPBACK": "1",
           "NOTIFY_WORKERS": str(args.workers), "NOTIFY_BATCH": "500",
           "NOTIFY_VAPID_KEY_PATH": f"/tmp/{schema}.pem"}  # fmt: skip
    cmd = [sys.executable, "-m", "eldercare", "--log-level", "WARNING", "notify", "--no-migrate"]
    procs = [subprocess.Popen(cmd, env=env, cwd=ROOT) for _ in range(args.processes)]
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while conn.execute("SELECT 1 FROM notify_cursor").fetchone() is None:
                time.sleep(0.2)
        time.sleep(1.0)
        paths = _members_of(url)
        t0 = time.time()
        raised = _raise(url, elder_ids, center)
        burst_s = time.time() - t0
        deadline = time.time() + 600
        while len(rx.arrivals) < len(paths) and time.time() < deadline:
            time.sleep(0.2)
        arrivals = list(rx.arrivals)
        lat_ms = sorted((at - raised[paths[p]]) * 1000 for p, at in arrivals if p in paths)
        span_s = max(at for _, at in arrivals) - t0
        q = statistics.quantiles(lat_ms, n=100)
        print(f"{args.members} members, {args.alerts} alerts raised in {burst_s:.1f} s;"
              f" {len(lat_ms)} push requests of {len(paths)} in {span_s:.1f} s")  # fmt: skip
        print(f"raise -> push request: p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms,"
              f" max {lat_ms[-1]:.0f} ms")  # fmt: skip
        print(
            f"notifier x{args.processes}: {len(lat_ms) / span_s:.0f} deliveries/s"
            " (encrypt, sign, POST, record)"
        )
        bare = _bare_loop(rx.url, 3000, args.workers)
        print(f"bare HTTP POST loop, {args.workers} threads, same stand-in: {bare:.0f} posts/s")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        Path(f"/tmp/{schema}.pem").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
