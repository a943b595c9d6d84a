"""Registry reloads off the message loop.

Loading the whole registry takes seconds at district scale (3.5-3.7 s for 245,231 devices,
`bench/bench_district.py --elders 100000`, docs/scaling.md); done on the loop every 10 s it held
every message, an SOS included, behind it. A background thread polls `registry_version`
(migration 043: one row, bumped by every statement that changes what `load_fleet` reads) every
`period_s` on its own connection, loads the registry only when the version moved, and hands the
loaded `Fleet` to the loop, which adopts it between two drains.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from gateway import Fleet
from ingest.registry import load_fleet, registry_version

logger = logging.getLogger(__name__)

Connect = Callable[[], psycopg.Connection[Any]]


class FleetReloader:
    """Loads the registry in a thread when its version changes; `take()` hands it over.

    Example:
        reloader = FleetReloader(lambda: pg.connect(url), version_at_start, 10.0)
        reloader.start()
        ...
        fresh = reloader.take()  # on the loop: a Fleet newer than the last one, or None
    """

    def __init__(self, connect: Connect, version: int | None, period_s: float) -> None:
        """`version`: the registry version the caller loaded (None: unknown, load once)."""
        self._connect = connect
        self._version = version
        self._period_s = period_s
        self._lock = threading.Lock()
        self._ready: Fleet | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loads = 0

    def start(self) -> None:
        """Start polling (a daemon thread)."""
        self._thread = threading.Thread(target=self._run, name="fleet-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; waits up to 5 s for a load in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def take(self) -> Fleet | None:
        """The registry loaded since the last call, if its version moved; else None."""
        with self._lock:
            fleet, self._ready = self._ready, None
        return fleet

    def check_now(self) -> None:
        """One poll on the calling thread (tests, and the thread's own loop)."""
        conn = self._connect()
        try:
            self._poll(conn)
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.wait(self._period_s):
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                self._poll(conn)
            except psycopg.Error as exc:
                logger.warning(
                    "registry reload failed (%s); retrying in %.0f s", exc, self._period_s
                )
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                conn = None
            except Exception:
                logger.exception("registry reload failed")
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _poll(self, conn: psycopg.Connection[Any]) -> None:
        version = registry_version(conn)
        conn.commit()
        if version is not None and version == self._version:
            return
        # One snapshot: the version read is the one of the rows loaded.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        try:
            version = registry_version(conn)
            fleet = load_fleet(conn)
            conn.commit()
        finally:
            conn.isolation_level = None
        with self._lock:
            self._ready = fleet
        self._version = version
        self.loads += 1
        logger.info("registry changed (version %s): %d device(s)", version, len(fleet.devices))
