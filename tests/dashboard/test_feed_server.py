"""The live feed behind a real uvicorn server: slow clients are dropped, others keep up,
memory stays flat over many reconnects."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from dashboard.deps import SESSION_COOKIE
from tests.dashboard.conftest import PASSWORD, DashFleet, RaiseAlert, make_user


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run `app` on uvicorn in a thread; yields host:port."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _session(addr: str, username: str) -> str:
    resp = httpx.post(
        f"http://{addr}/api/v1/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert resp.status_code == 200, resp.text
    return resp.cookies[SESSION_COOKIE]


def _ws(addr: str, token: str, query: str = "", rcvbuf: int | None = None) -> ClientConnection:
    sock = None
    if rcvbuf is not None:  # a small receive window: the server's sends back up sooner
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        host, port = addr.split(":")
        sock.connect((host, int(port)))
    return connect(
        f"ws://{addr}/api/v1/feed{query}",
        sock=sock,
        additional_headers={"Cookie": f"{SESSION_COOKIE}={token}"},
        compression=None,
        proxy=None,
        max_queue=1 if rcvbuf else 64,
        max_size=None,
    )


def _flood(schema_url: str, alert_id: str, n: int) -> None:
    """n history entries (feed events) of ~1 kB each, in one transaction."""
    with psycopg.connect(schema_url) as conn:
        conn.execute(
            "INSERT INTO alert_transitions (alert_id, at_ts, from_status, to_status, center_id,"
            " actor, note) SELECT %s, g, 'open', 'open', 'cc', 'system', repeat('x', 900) || g"
            " FROM generate_series(1, %s) AS g",
            (alert_id, n),
        )


def _wait(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.slow
def test_a_client_that_stops_reading_is_dropped_and_others_get_everything(
    app_factory: Callable[..., FastAPI],
    schema_url: str,
    raise_alert: RaiseAlert,
    dash_fleet: DashFleet,
) -> None:
    app = app_factory(
        insecure_cookies=True, feed_queue_max=200, feed_page=50, feed_close_wait_s=30.0
    )
    name = make_user(schema_url, "dispatcher", center_id=dash_fleet.center_a)
    alert = raise_alert(dash_fleet.elders[0])
    n = 8000
    with serve(app) as addr:
        token = _session(addr, name)
        slow = _ws(addr, token, rcvbuf=4096)
        fast = _ws(addr, token)
        _wait(lambda: len(app.state.hub.subscribers) == 2, 10, "clients not subscribed")
        got: list[int] = []

        def read_fast() -> None:
            while len(got) < n:
                got.append(json.loads(fast.recv(timeout=60))["event_id"])

        reader = threading.Thread(target=read_fast)
        reader.start()
        t0 = time.monotonic()
        _flood(schema_url, alert.alert_id, n)
        _wait(lambda: len(app.state.hub.subscribers) == 1, 60, "slow client not dropped")
        slow_ids: list[int] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                slow_ids.append(json.loads(slow.recv(timeout=60))["event_id"])
        reader.join(120)
        fast_s = time.monotonic() - t0
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert len(got) == n and got == sorted(got) and got[-1] - got[0] == n - 1
        assert slow_ids == got[: len(slow_ids)] and len(slow_ids) < n
        # The dropped client resumes where it stopped and gets exactly the rest.
        with _ws(addr, token, f"?after={slow_ids[-1]}") as again:
            rest = [json.loads(again.recv(timeout=30))["event_id"] for _ in got[len(slow_ids) :]]
        assert rest == got[len(slow_ids) :]
        fast.close()
    assert fast_s < 60


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _listen_port() -> int:
    """A free port below the ephemeral range, so no outgoing connection takes it meanwhile."""
    while True:
        port = random.randrange(20_000, 30_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@contextmanager
def dashboard_process(schema_url: str, mqtt_url: str, prefix: str) -> Iterator[tuple[str, int]]:
    """`eldercare dashboard` in its own process; yields (host:port, pid)."""
    port = _listen_port()
    env = {
        **os.environ,
        "DATABASE_URL": schema_url,
        "MQTT_URL": mqtt_url,
        "DASHBOARD_INSECURE_COOKIES": "1",
        "DASHBOARD_MIGRATE_ON_START": "0",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eldercare",
            "--log-level",
            "WARNING",
            "dashboard",
            "--port",
            str(port),
            "--prefix",
            prefix,
        ],
        env=env,
    )
    addr = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "dashboard exited"
            try:
                if httpx.get(f"http://{addr}/api/v1/auth/me").status_code == 401:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "dashboard did not start"
            time.sleep(0.2)
        yield addr, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def _reconnect(addr: str, token: str, n: int, after: int) -> None:
    for _ in range(n):
        with _ws(addr, token, f"?after={after}") as ws:
            msg: Any = json.loads(ws.recv(timeout=30))
            assert msg["event_id"] > after


@pytest.mark.slow
def test_a_thousand_reconnects_grow_server_memory_by_less_than_five_percent(
    schema_url: str,
    mqtt_url: str,
    topic_prefix: str,
    raise_alert: RaiseAlert,
    dash_fleet: DashFleet,
) -> None:
    name = make_user(schema_url, "dispatcher", center_id=dash_fleet.center_a)
    raise_alert(dash_fleet.elders[0])
    with dashboard_process(schema_url, mqtt_url, topic_prefix) as (addr, pid):
        token = _session(addr, name)
        _reconnect(addr, token, 200, 0)  # warm up: pool, caches, allocator arenas
        before = _rss_kb(pid)
        _reconnect(addr, token, 1000, 0)
        after = _rss_kb(pid)
    growth = (after - before) / before
    print(f"server RSS {before} kB -> {after} kB after 1,000 reconnects ({growth:+.2%})")
    assert growth < 0.05
