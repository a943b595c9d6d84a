"""Prometheus metrics of the ingest service (own registry, so several services can coexist)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from ingest.batch import Batch, Kind
from ingest.db import WriteResult


@dataclass
class IngestMetrics:
    """Counters and histograms of one ingest service."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter("ingest_received", "Messages received from the broker", registry=r)
        self.stored = Counter("ingest_stored", "Rows stored", ["kind"], registry=r)
        self.duplicates = Counter(
            "ingest_duplicates", "Messages already stored (redeliveries)", ["kind"], registry=r
        )
        self.dead = Counter("ingest_dead_letters", "Dead letters", ["reason"], registry=r)
        self.batch_size = Histogram(
            "ingest_batch_size",
            "Messages per committed batch",
            registry=r,
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
        )
        self.commit_s = Histogram(
            "ingest_commit_seconds",
            "Time to write and commit one batch",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.lag_s = Histogram(
            "ingest_consumer_lag_seconds",
            "Commit time minus receive time",
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
        )
        self.db_errors = Counter("ingest_db_errors", "Failed batch writes (retried)", registry=r)
        self.misdated = Counter(
            "ingest_misdated",
            "Messages stored outside the series: device ts implausibly old",
            registry=r,
        )
        for kind in Kind:
            self.stored.labels(kind.value)
            self.duplicates.labels(kind.value)

    def serve(self, port: int) -> None:
        """Serve /metrics on `port` (a daemon thread)."""
        start_http_server(port, registry=self.registry)

    def record(self, batch: Batch, result: WriteResult, commit_s: float, now_ms: int) -> None:
        """Account for one committed batch."""
        self.batch_size.observe(batch.accepted + len(batch.dead))
        self.commit_s.observe(commit_s)
        for kind, n in result.stored.items():
            self.stored.labels(kind.value).inc(n)
        for kind, n in result.duplicates.items():
            self.duplicates.labels(kind.value).inc(n)
        for reason, n in result.dead.items():
            self.dead.labels(reason).inc(n)
        self.misdated.inc(len(batch.misdated))
        # Lag on the platform clock only: a device ts would mix in the device's clock error.
        for rows in batch.rows.values():
            for row in rows:
                self.lag_s.observe(max(0.0, (now_ms - row.received_ms) / 1000.0))
