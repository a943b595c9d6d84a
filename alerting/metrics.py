"""Prometheus metrics and health endpoints of the alerting service (own registry, I/O only).

`/metrics` (Prometheus text format), `/healthz` (live: the message loop has ticked
recently) and `/readyz` (ready: started, the broker connected, and PostgreSQL or the local
outbox able to keep alerts) on one port, `ALERTING_METRICS_PORT`, bound to
`ALERTING_METRICS_HOST` (127.0.0.1 by default; docker-compose.yml sets 0.0.0.0 so a Prometheus
on the compose network can scrape).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ingest.metrics import serve_endpoints

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the service reports at scrape time."""

    inbox_depth: int
    outbox_depth: int
    database_up: bool
    outbox_usable: bool
    broker_connected: bool
    ready: bool
    oldest_unacknowledged_s: float  # platform clock; 0 when none is waiting
    last_tick_s: float  # platform clock, s since the epoch; 0 before the first tick
    last_tick_age_s: float  # monotonic; how long ago the loop last ticked
    triggers: int
    suppressed: dict[str, int] = field(default_factory=dict)  # reason -> inputs
    anomaly_baselines: int = 0  # elders the anomaly model has enough readings to judge
    anomaly_bytes: int = 0  # the anomaly model's per-elder heart-rate histograms


class _Live(Collector):
    def __init__(self, state: Callable[[], LiveState]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        s = self._state()
        gauges = (
            ("alerting_inbox_depth", "Messages waiting in the inbox", s.inbox_depth),
            ("alerting_outbox_depth", "Alerts and dead letters kept locally", s.outbox_depth),
            ("alerting_database_up", "1 while PostgreSQL takes writes", int(s.database_up)),
            (
                "alerting_broker_connected",
                "1 while the broker is connected",
                int(s.broker_connected),
            ),
            (
                "alerting_oldest_unacknowledged_seconds",
                "Age of the oldest open or escalated alert",
                s.oldest_unacknowledged_s,
            ),
            ("alerting_last_tick_timestamp_seconds", "Time of the last tick", s.last_tick_s),
            (
                "alerting_anomaly_baselines",
                "Elders with enough heart-rate readings to be judged",
                s.anomaly_baselines,
            ),
            (
                "alerting_anomaly_memory_bytes",
                "The anomaly model's per-elder heart-rate histograms",
                s.anomaly_bytes,
            ),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        yield CounterMetricFamily("alerting_triggers", "Detector triggers", value=s.triggers)
        suppressed = CounterMetricFamily(
            "alerting_suppressed_inputs", "Inputs not acted on", labels=["reason"]
        )
        for reason, n in sorted(s.suppressed.items()):
            suppressed.add_metric([reason], n)
        yield suppressed


class AlertingMetrics:
    """Counters the message loop increments, plus the live state read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("alerting_received", "Device messages received", registry=r)
        self.invalid = Counter("alerting_invalid", "Messages that failed to decode", registry=r)
        self.alerts = Counter("alerting_alerts", "Alerts raised", ["kind"], registry=r)
        self.published = Counter("alerting_published", "Alert feed messages", registry=r)
        self.dead_letters = Counter(
            "alerting_dead_letters", "Messages dead-lettered", ["reason"], registry=r
        )
        self._server: ThreadingHTTPServer | None = None

    def bind(self, state: Callable[[], LiveState]) -> None:
        """Report `state()` at every scrape."""
        self.registry.register(_Live(state))

    def serve(
        self,
        port: int,
        state: Callable[[], LiveState],
        live_within_s: float = 60.0,
        host: str = "127.0.0.1",
    ) -> int:
        """Serve /metrics, /healthz and /readyz on `host`:`port` (0: any free port) in a daemon
        thread.

        Args:
            port: TCP port.
            state: the live state.
            live_within_s: `/healthz` fails once the loop has not ticked for this long.
            host: address to bind; 127.0.0.1 (the default) keeps it off the network,
                0.0.0.0 serves every interface.

        Returns:
            The port served.

        Raises:
            OSError: the address is taken or cannot be bound.
        """

        def health() -> tuple[bool, bool]:
            st = state()
            live = st.last_tick_age_s <= live_within_s
            ready = st.ready and st.broker_connected and (st.database_up or st.outbox_usable)
            return live, ready

        self._server = serve_endpoints(self.registry, port, host, health)
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
