"""The parts of `eldercare up` around the services: its database, the console, clean stops.

`run(args, inner)` chooses the database (eldercare.database), exports it as `DATABASE_URL`
for every service of this process, turns SIGTERM (what `docker compose stop` and systemd
send) into the same clean stop as Ctrl-C, and stops an embedded server last. The console
runs in a thread of `up` with its own uvicorn server, so one stop ends it with the rest.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from eldercare import database

logger = logging.getLogger(__name__)

# The console's port when `--dashboard-port` and $DASHBOARD_PORT are unset.
DEFAULT_DASHBOARD_PORT = 8080


class _Starter(Protocol):
    def start(self, name: str, run: Callable[[threading.Event], None]) -> None: ...


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `up` that belong here."""
    p.add_argument(
        "--embedded-db",
        action="store_true",
        help="run the platform's own PostgreSQL (data in var/postgres) even when one is reachable",
    )
    p.add_argument(
        "--dashboard-port",
        type=int,
        default=int(os.environ.get("DASHBOARD_PORT", DEFAULT_DASHBOARD_PORT)),
        help="port of the dispatcher console on 127.0.0.1 (default 8080; 0 for none)",
    )


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace, inner: Callable[[argparse.Namespace], int]) -> int:
    """Run `inner` with a database chosen for it; SIGTERM stops it like Ctrl-C.

    Returns:
        `inner`'s exit code; 2 when no database can be had.
    """
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # A shell starting `up` in the background sets SIGINT to "ignore", which Python keeps:
    # `kill -INT` must stop it like Ctrl-C all the same.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    saved = os.environ.get("DATABASE_URL")
    try:
        with database.provide(force_embedded=bool(getattr(args, "embedded_db", False))) as db:
            print(f"eldercare up: database {db.source}: {_redacted(db.url)}", file=sys.stderr)
            os.environ["DATABASE_URL"] = db.url
            return inner(args)
    except database.EmbeddedUnavailable as exc:
        print(f"eldercare up: {exc}", file=sys.stderr)
        return 2
    finally:
        if saved is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = saved
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _redacted(url: str) -> str:
    """The URL without a password (`user:***@host`)."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, userinfo = head.partition("//")
    return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"


def _serve_console(settings: Any, stop: threading.Event) -> None:
    import uvicorn

    from dashboard.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)

    def watch() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=watch, name="dashboard-stop", daemon=True).start()
    server.run()  # signal handlers are installed by uvicorn only in the main thread
    if not stop.is_set():
        raise RuntimeError("the console stopped")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As uvicorn binds: a port whose last connections are in TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _any_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def start_console(
    services: _Starter, db_url: str, mqtt_login: str, args: argparse.Namespace
) -> str | None:
    """Start the console, create the demo logins and print both; the reason if it fails."""
    port = int(getattr(args, "dashboard_port", DEFAULT_DASHBOARD_PORT))
    if port == 0:
        return None
    from dashboard.demo import DEMO_PASSWORD, ensure_demo_accounts
    from dashboard.settings import DashboardSettings
    from ingest import pg

    if not _port_free(port):
        logger.warning("port %d is taken; the console listens on another one", port)
        port = _any_port()
    settings = DashboardSettings(
        database_url=db_url,
        mqtt_url=mqtt_login,
        topic_prefix=args.prefix,
        host="127.0.0.1",
        port=port,
        insecure_cookies=True,  # plain HTTP on localhost only (bound to 127.0.0.1 above)
    )
    with pg.connect(db_url) as conn:
        accounts = ensure_demo_accounts(conn, int(time.time() * 1000))
    services.start("dashboard", lambda stop: _serve_console(settings, stop))
    base = f"http://127.0.0.1:{settings.port}"
    if not _ready(f"{base}/readyz", float(args.ready_timeout)):
        return f"dashboard did not become ready on {base} within {args.ready_timeout:g} s"
    names = ", ".join(f"{a.username} ({a.role.value})" for a in accounts)
    print(
        f"eldercare up: dispatcher console {base}/ - demo logins {names}, password {DEMO_PASSWORD}",
        file=sys.stderr,
        flush=True,
    )
    return None
