"""Prometheus metrics and health endpoints of the notification sender (own registry, I/O only).

`/metrics` (Prometheus text format), `/healthz` (live: the planner and the sender loops each
went round within `live_within_s`) and `/readyz` (ready: both loops hold a database
connection) on one port, `NOTIFY_METRICS_PORT`, bound to `NOTIFY_METRICS_HOST` (127.0.0.1 by
default; docker-compose.yml sets 0.0.0.0 so a Prometheus on the compose network can scrape).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ingest.metrics import serve_endpoints

logger = logging.getLogger(__name__)

LOOPS = ("plan", "send")


class _Loops(Collector):
    def __init__(self, metrics: NotifyMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "notify_database_up", "1 while the loop holds a database connection", labels=["loop"]
        )
        age = GaugeMetricFamily(
            "notify_loop_age_seconds", "Seconds since the loop last went round", labels=["loop"]
        )
        for loop in LOOPS:
            up.add_metric([loop], int(self._m.database_up(loop)))
            age.add_metric([loop], self._m.age_s(loop))
        yield up
        yield age


class NotifyMetrics:
    """Counters the planner and the sender increment, and each loop's last round.

    Args:
        monotonic: the clock of the loop ages (tests pass their own).
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.planned = Counter("notify_events_planned", "Alert events planned", registry=r)
        self.attempts = Counter(
            "notify_attempts",
            "Delivery attempts by channel and outcome",
            ["channel", "outcome"],
            registry=r,
        )
        self._monotonic = monotonic
        self._started = monotonic()
        self._lock = threading.Lock()
        self._beat: dict[str, float] = {}
        self._db: dict[str, bool] = {}
        self.registry.register(_Loops(self))
        self._server: ThreadingHTTPServer | None = None
        self.port: int | None = None  # the port served, once `serve` ran

    def beat(self, loop: str, database_up: bool = True) -> None:
        """Record that `loop` ('plan' or 'send') went round, with or without its database."""
        with self._lock:
            self._beat[loop] = self._monotonic()
            self._db[loop] = database_up

    def age_s(self, loop: str) -> float:
        """Seconds since `loop` last went round (since start when it never did)."""
        with self._lock:
            return self._monotonic() - self._beat.get(loop, self._started)

    def database_up(self, loop: str) -> bool:
        """Whether `loop` held a database connection on its last round."""
        with self._lock:
            return self._db.get(loop, False)

    def live(self, within_s: float) -> bool:
        """Both loops went round within `within_s` seconds (or the process is that young)."""
        return all(self.age_s(loop) <= within_s for loop in LOOPS)

    def ready(self) -> bool:
        """Both loops hold a database connection."""
        return all(self.database_up(loop) for loop in LOOPS)

    def serve(self, port: int, host: str = "127.0.0.1", live_within_s: float = 60.0) -> int:
        """Serve /metrics, /healthz and /readyz on `host`:`port` (0: any free port) in a
        daemon thread.

        Args:
            port: TCP port.
            host: address to bind; 127.0.0.1 (the default) keeps it off the network,
                0.0.0.0 serves every interface.
            live_within_s: `/healthz` fails once a loop has not gone round for this long.

        Returns:
            The port served.

        Raises:
            OSError: the address is taken or cannot be bound.
        """
        self._server = serve_endpoints(
            self.registry, port, host, lambda: (self.live(live_within_s), self.ready())
        )
        self.port = int(self._server.server_address[1])
        return self.port

    def close(self) -> None:
        """Stop serving (no-op when not serving)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
