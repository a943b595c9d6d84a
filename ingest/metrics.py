"""Prometheus metrics of the ingest service (own registry, so several services can coexist).

`/metrics`, `/healthz` (live) and `/readyz` (ready: subscribed and the database connected; see
`IngestService.health`) on `INGEST_METRICS_HOST`:`INGEST_METRICS_PORT` (127.0.0.1 by default:
metrics are for a scraper on the same host or network namespace; docker-compose.yml sets
0.0.0.0 so a Prometheus on the compose network can scrape). Besides the write counters it
carries the state of TimescaleDB's background jobs (`TimescaleJobs`), read from the database at
most every `INGEST_JOBS_REFRESH_S` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ingest.batch import Batch, Kind
from ingest.db import Conn, WriteResult, connect
from ingest.migrate import recorded_mode

logger = logging.getLogger(__name__)

# A job whose next start is this far in the past is stalled: its scheduler is not running it.
# The same threshold as `eldercare db info` (ingest.cli.timescale_jobs).
STALLED_AFTER = "1 hour"

_JOBS_SQL = f"""
SELECT j.job_id, j.proc_name, coalesce(j.hypertable_name, ''),
       coalesce(s.last_run_status, '') = 'Failed',
       coalesce(j.scheduled, false)
           AND coalesce(s.next_start, j.next_start) < now() - interval '{STALLED_AFTER}',
       coalesce(s.total_failures, 0)
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.job_stats s USING (job_id)
ORDER BY j.job_id
"""


@dataclass(frozen=True, slots=True)
class JobState:
    """One TimescaleDB background job as `timescaledb_information.jobs`/`job_stats` show it."""

    job_id: int
    proc: str  # e.g. policy_compression, policy_retention, policy_refresh_continuous_aggregate
    hypertable: str  # '' for a job on no hypertable
    failed: bool  # its last run failed
    stalled: bool  # scheduled, and its next start is over STALLED_AFTER in the past
    total_failures: int


@dataclass(frozen=True, slots=True)
class JobsSnapshot:
    """What one read of the database found."""

    mode: str  # ingest.migrate.StorageMode value; 'unknown' before the first migration
    jobs: tuple[JobState, ...]
    checked_s: float  # platform clock, s since the epoch


def read_jobs(conn: Conn) -> JobsSnapshot:
    """The storage mode and, in TimescaleDB mode, every background job's state.

    Args:
        conn: a connection to the platform's database (any role: the views are public).

    Returns:
        A snapshot; `jobs` is empty in plain mode or without the extension.
    """
    mode = recorded_mode(conn)
    jobs: tuple[JobState, ...] = ()
    has_ext = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if has_ext is not None:
        rows = conn.execute(_JOBS_SQL).fetchall()
        jobs = tuple(
            JobState(int(r[0]), str(r[1]), str(r[2]), bool(r[3]), bool(r[4]), int(r[5]))
            for r in rows
        )
    return JobsSnapshot(mode.value if mode else "unknown", jobs, time.time())


@dataclass
class IngestMetrics:
    """Counters and histograms of one ingest service."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    port: int | None = None  # the port served, once `serve` ran
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _jobs: TimescaleJobs | None = field(default=None, repr=False)

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

    def serve(
        self,
        port: int,
        host: str = "127.0.0.1",
        health: Callable[[], tuple[bool, bool]] | None = None,
    ) -> int:
        """Serve /metrics, /healthz and /readyz on `host`:`port` (0: any free port) in a daemon
        thread.

        Args:
            port: TCP port.
            host: address to bind; 127.0.0.1 (the default) keeps it off the network,
                0.0.0.0 serves every interface.
            health: (live, ready) at request time; /healthz and /readyz answer 200 when true,
                else 503. None: both 200 while serving.

        Returns:
            The port served.

        Raises:
            OSError: the address is taken or cannot be bound.
        """
        self._server = serve_endpoints(self.registry, port, host, health)
        self.port = int(self._server.server_address[1])
        return self.port

    def watch_jobs(self, database_url: str, refresh_s: float = 60.0) -> None:
        """Add TimescaleDB's background jobs to /metrics (`TimescaleJobs`); once per process."""
        if self._jobs is None:
            self._jobs = TimescaleJobs(database_url, refresh_s)
            self.registry.register(self._jobs)

    def close(self) -> None:
        """Stop serving /metrics (no-op when not serving)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

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


class TimescaleJobs(Collector):
    """Gauges of TimescaleDB's background jobs, read from the database at scrape time.

    At most one read every `refresh_s` seconds (a scrape in between gets the last snapshot);
    a read that fails keeps the last snapshot and is logged. Series:

    * `eldercare_storage_mode{mode}` 1: `timescaledb`, `postgresql` (plain) or `unknown`;
    * `eldercare_timescaledb_jobs_checked_timestamp_seconds`: when the last read succeeded;
    * with the TimescaleDB extension only (absent in plain mode):
      `eldercare_timescaledb_jobs_failed` / `..._jobs_stalled` (how many jobs),
      and per job, labelled `job_id`, `proc`, `hypertable`:
      `eldercare_timescaledb_job_failed` (1: its last run failed),
      `eldercare_timescaledb_job_stalled` (1: over STALLED_AFTER overdue),
      `eldercare_timescaledb_job_failures` (failed runs since the job was created).
    """

    def __init__(
        self,
        database_url: str,
        refresh_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = database_url
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._snapshot: JobsSnapshot | None = None
        self._due = 0.0

    def snapshot(self) -> JobsSnapshot | None:
        """The latest snapshot, read now when the last one is `refresh_s` old; None when no
        read has succeeded yet."""
        with self._lock:
            now = self._monotonic()
            if now >= self._due:
                self._due = now + self._refresh_s
                try:
                    with connect(self._url, autocommit=True) as conn:
                        self._snapshot = read_jobs(conn)
                except psycopg.Error as exc:
                    logger.warning("metrics: cannot read TimescaleDB jobs: %s", exc)
            return self._snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        if snap is None:
            return
        mode = GaugeMetricFamily(
            "eldercare_storage_mode", "Storage mode of the database (1)", labels=["mode"]
        )
        mode.add_metric([snap.mode], 1)
        yield mode
        yield GaugeMetricFamily(
            "eldercare_timescaledb_jobs_checked_timestamp_seconds",
            "When TimescaleDB's jobs were last read",
            value=snap.checked_s,
        )
        if snap.mode != "timescaledb" and not snap.jobs:
            return
        yield GaugeMetricFamily(
            "eldercare_timescaledb_jobs_failed",
            "TimescaleDB background jobs whose last run failed",
            value=sum(j.failed for j in snap.jobs),
        )
        yield GaugeMetricFamily(
            "eldercare_timescaledb_jobs_stalled",
            f"TimescaleDB background jobs scheduled but over {STALLED_AFTER} overdue",
            value=sum(j.stalled for j in snap.jobs),
        )
        labels = ["job_id", "proc", "hypertable"]
        failed = GaugeMetricFamily(
            "eldercare_timescaledb_job_failed", "1 when the job's last run failed", labels=labels
        )
        stalled = GaugeMetricFamily(
            "eldercare_timescaledb_job_stalled",
            f"1 when the job is scheduled but over {STALLED_AFTER} overdue",
            labels=labels,
        )
        failures = GaugeMetricFamily(
            "eldercare_timescaledb_job_failures",
            "Failed runs of the job since it was created",
            labels=labels,
        )
        for job in snap.jobs:
            key = [str(job.job_id), job.proc, job.hypertable]
            failed.add_metric(key, int(job.failed))
            stalled.add_metric(key, int(job.stalled))
            failures.add_metric(key, job.total_failures)
        yield failed
        yield stalled
        yield failures


def serve_endpoints(
    registry: CollectorRegistry,
    port: int,
    host: str,
    health: Callable[[], tuple[bool, bool]] | None,
) -> ThreadingHTTPServer:
    """Serve /metrics, /healthz and /readyz of one process in a daemon thread.

    Used by every service (ingest, alerting, notify) so that the three endpoints behave alike.

    Args:
        registry: the Prometheus registry behind /metrics.
        port: TCP port (0: any free port; read it from `server_address`).
        host: address to bind; 127.0.0.1 keeps it off the network, 0.0.0.0 serves every
            interface.
        health: (live, ready) at request time; /healthz and /readyz answer 200 when true, else
            503 ("unavailable"). None: both 200 while serving. Any other path: 404.

    Returns:
        The running server (`shutdown()` then `server_close()` to stop it).

    Raises:
        OSError: the address is taken or cannot be bound.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                return
            if self.path not in ("/healthz", "/readyz"):
                self._reply(404, b"not found\n")
                return
            live, ready = health() if health is not None else (True, True)
            ok = live if self.path == "/healthz" else ready
            self._reply(200 if ok else 503, b"ok\n" if ok else b"unavailable\n")

        def _reply(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("metrics: %s", format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
