"""Storage per device per day, raw and compressed, on a simulated district day.

Generates a district (`firmware_sim.district.generate_fleet`, `--elders`, `--seed`), records
`--hours` (24) of its traffic with `firmware_sim.record.record` (the same engine `eldercare sim
run` drives, run faster than real time, from local midnight in Beijing), and writes every
message through ingest's own batch path (`build_batch` + `BatchWriter`, the code the service
commits with) into:

- plain mode: a fresh schema on `$DATABASE_URL` (default the local PostgreSQL), COPY path;
  sizes are heap + indexes + TOAST summed over each series' weekly partitions;
- TimescaleDB mode: `--timescaledb-url` (a native server; a fresh database is created and
  dropped on it), else the WebAssembly TimescaleDB of the test suite (`.ci/pglite`, started
  here, in memory; UNNEST path one message per statement, see PGLITE_BATCH: its wire server
  cannot take COPY). `compress_chunk` runs on every chunk of every series (segment by device,
  order by time: migration 002) and `hypertable_compression_stats` gives the chunks' bytes
  before and after (heap + indexes + TOAST); `hypertable_size` before compression is printed
  too (it adds the empty root table).

Prints, per series, rows and bytes per device per day (the series' own device type; every
device for `device_status` and `device_events`), raw in each mode and compressed. This bench
measures bytes, not speed, so there is no broker ceiling to compare with.

Usage: python bench/bench_storage.py [--elders 50] [--hours 24] [--seed 1]
       [--timescaledb-url URL] [--skip-plain] [--skip-timescaledb]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import psycopg

from eldercare.broker import free_port
from firmware_sim.district import generate_fleet
from firmware_sim.record import record
from gateway import DeviceType, Fleet
from ingest.batch import Inbound, build_batch
from ingest.db import BatchWriter, connect
from ingest.migrate import StorageMode, apply_migrations, recorded_mode
from ingest.registry import import_fleet, load_registry
from ingest.settings import DEFAULT_DATABASE_URL, WriteMethod

ROOT = Path(__file__).resolve().parents[1]
PGLITE_DIR = ROOT / ".ci" / "pglite"
# Series table -> the device type whose devices write it (None: every device).
SERIES: dict[str, DeviceType | None] = {
    "band_telemetry": DeviceType.BAND,
    "cane_telemetry": DeviceType.CANE,
    "smoke_telemetry": DeviceType.SMOKE,
    "device_status": None,
    "device_events": None,
}
BATCH = 2000  # messages per committed batch (ingest's default INGEST_BATCH_MAX)
# The WebAssembly server dies (`RuntimeError: unreachable`) on some UNNEST statements of cane
# windows: batches of 2,000, 200 and 20 messages all killed it part-way through a 50-elder day
# (one of 50 messages holding 10 cane windows kills a fresh server); one message per statement
# went through. The batch size does not change the bytes stored.
PGLITE_BATCH = 1


@dataclass
class Sizes:
    """One series in one mode: rows and bytes (compressed: None when not measured)."""

    rows: int
    raw_bytes: int
    compressed_bytes: int | None = None


def record_day(fleet: Fleet, hours: float, seed: int, workdir: Path) -> tuple[Path, int, float]:
    """Record `hours` of the fleet's traffic from yesterday's midnight, Beijing time.

    Returns:
        The recording, its start (Unix ms) and the seconds it took.
    """
    tz = ZoneInfo("Asia/Shanghai")
    today = dt.datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    start_ms = int((today - dt.timedelta(days=1)).timestamp() * 1000)
    out = workdir / "district.rec"
    t0 = time.perf_counter()
    stats = record(fleet, out, duration_s=hours * 3600, start_ms=start_ms, seed=seed)
    took = time.perf_counter() - t0
    print(
        f"recorded {stats.messages} messages ({stats.bytes / 1e6:.1f} MB of JSON),"
        f" {stats.incidents} incidents, in {took:.1f} s"
    )
    return out, start_ms, took


def _messages(path: Path, start_ms: int, size: int) -> Iterator[list[Inbound]]:
    """The recording as batches of `size` messages, each received at its publish time."""
    batch: list[Inbound] = []
    with path.open("rb") as f:
        for line in f:
            offset, qos, _retain, topic, payload = line.rstrip(b"\n").split(b"\t", 4)
            batch.append(Inbound(topic.decode(), payload, start_ms + int(offset), int(qos)))
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def load(
    url: str, fleet: Fleet, path: Path, start_ms: int, method: WriteMethod, size: int = BATCH
) -> StorageMode:
    """Migrate, import the fleet and write the whole recording; returns the storage mode."""
    with connect(url, statement_timeout_ms=0) as conn:
        apply_migrations(conn)
        import_fleet(conn, fleet)
        conn.commit()
        mode = recorded_mode(conn)
        assert mode is not None
        registry = load_registry(conn)
        conn.commit()
        writer = BatchWriter(method, mode)
        stored = dead = 0
        t0 = time.perf_counter()
        for items in _messages(path, start_ms, size):
            # The recording is all valid traffic: a dead letter (counted below) is a fault.
            try:
                result = writer.write(conn, build_batch(items, registry))
                conn.commit()
            except psycopg.OperationalError:
                print(
                    f"{mode.value}: the server failed after {stored} rows, at offset"
                    f" {items[0].received_ms - start_ms} ms"
                )
                raise
            stored += sum(result.stored.values())
            dead += sum(result.dead.values())
        print(
            f"{mode.value}: stored {stored} rows, {dead} dead letters,"
            f" in {time.perf_counter() - t0:.1f} s ({method.value})"
        )
    return mode


def _rows(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def plain_sizes(url: str) -> dict[str, Sizes]:
    """Rows and bytes (heap + indexes + TOAST over the partitions) of each series."""
    out = {}
    with connect(url, autocommit=True, statement_timeout_ms=0) as conn:
        for table in SERIES:
            conn.execute(f"VACUUM ANALYZE {table}")
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(relid)), 0)"
                " FROM pg_partition_tree(%s::regclass)",
                (table,),
            ).fetchone()
            out[table] = Sizes(_rows(conn, table), int(row[0]) if row else 0)
    return out


def timescale_sizes(url: str) -> tuple[dict[str, Sizes], dict[str, str]]:
    """Rows and bytes of each hypertable, then compressed: `compress_chunk` on every chunk.

    Returns:
        Sizes per series, and per series the error text when compression failed.
    """
    out: dict[str, Sizes] = {}
    errors: dict[str, str] = {}
    with connect(url, autocommit=True, statement_timeout_ms=0) as conn:
        for table in SERIES:
            row = conn.execute("SELECT hypertable_size(%s::regclass)", (table,)).fetchone()
            out[table] = Sizes(_rows(conn, table), int(row[0]) if row and row[0] else 0)
        for table in SERIES:
            try:
                conn.execute(
                    "SELECT compress_chunk(c, if_not_compressed => true)"
                    " FROM show_chunks(%s::regclass) c",
                    (table,),
                ).fetchall()
                row = conn.execute(
                    "SELECT sum(before_compression_total_bytes),"
                    " sum(after_compression_total_bytes)"
                    " FROM hypertable_compression_stats(%s::regclass)",
                    (table,),
                ).fetchone()
            except psycopg.Error as exc:
                errors[table] = f"{type(exc).__name__}: {str(exc).strip()}"
                continue
            if row is None or row[1] is None:
                errors[table] = "hypertable_compression_stats reported no compressed chunk"
                continue
            # The chunks' own bytes before and after; hypertable_size also counts the empty
            # root table and its indexes (a constant, printed for reference).
            before, after = int(row[0]), int(row[1])
            print(f"  {table}: hypertable_size {out[table].raw_bytes} B before compression")
            out[table].raw_bytes, out[table].compressed_bytes = before, after
            if _rows(conn, table) != out[table].rows:
                errors[table] = "row count changed by compression"
    return out, errors


def start_pglite(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The test suite's WebAssembly TimescaleDB (in memory), on a free port; output to `log`."""
    node = shutil.which("node")
    if node is None or not (PGLITE_DIR / "node_modules").is_dir():
        raise SystemExit("needs node and `npm ci --prefix .ci/pglite` (or --timescaledb-url)")
    port = free_port()
    proc = subprocess.Popen(
        [node, "server.mjs", str(port)],
        cwd=PGLITE_DIR,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"postgresql://postgres:postgres@127.0.0.1:{port}/postgres?sslmode=disable"
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return proc, url
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("the pglite server did not start") from None
            time.sleep(0.3)


def devices_of(fleet: Fleet, dtype: DeviceType | None) -> int:
    """How many devices write a series."""
    return sum(1 for d in fleet.devices if dtype is None or d.type is dtype)


def report(
    fleet: Fleet,
    days: float,
    plain: dict[str, Sizes] | None,
    tsdb: dict[str, Sizes] | None,
    errors: dict[str, str],
) -> None:
    """Print per series: devices, rows and bytes per device per day in each mode."""
    print(
        f"\nper device per day ({days * 24:g} h measured; {len(fleet.elders)} elders,"
        f" {len(fleet.devices)} devices)"
    )
    print(
        f"{'series':<16} {'devices':>7} {'rows':>7} {'plain B':>10} {'B/row':>6}"
        f" {'tsdb raw B':>11} {'tsdb comp B':>12} {'ratio':>6}"
    )
    totals = [0.0, 0.0, 0.0]
    for table, dtype in SERIES.items():
        n = devices_of(fleet, dtype) * days
        p = plain.get(table) if plain else None
        t = tsdb.get(table) if tsdb else None
        rows = (p or t).rows / n if (p or t) else 0.0  # type: ignore[union-attr]
        cells = [f"{table:<16} {devices_of(fleet, dtype):>7} {rows:>7.0f}"]
        if p:
            cells.append(f"{p.raw_bytes / n:>10.0f} {p.raw_bytes / max(p.rows, 1):>6.0f}")
            totals[0] += p.raw_bytes / days
        else:
            cells.append(f"{'-':>10} {'-':>6}")
        if t:
            cells.append(f"{t.raw_bytes / n:>11.0f}")
            totals[1] += t.raw_bytes / days
            if t.compressed_bytes is not None:
                ratio = t.raw_bytes / max(t.compressed_bytes, 1)
                cells.append(f"{t.compressed_bytes / n:>12.0f} {ratio:>6.1f}")
                totals[2] += t.compressed_bytes / days
            else:
                cells.append(f"{'failed':>12} {'-':>6}")
        print(" ".join(cells))
    print(
        f"district total per day: plain {totals[0] / 1e6:.1f} MB, TimescaleDB raw"
        f" {totals[1] / 1e6:.1f} MB, compressed {totals[2] / 1e6:.1f} MB"
        f" ({len(fleet.elders)} elders)"
    )
    for table, error in errors.items():
        print(f"compression of {table} failed: {error}")


def _fresh_database(url: str) -> tuple[str, str]:
    name = f"bench_storage_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elders", type=int, default=50, help="district size (default 50)")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (24)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timescaledb-url", help="a native TimescaleDB server (else pglite)")
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--skip-timescaledb", action="store_true")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    fleet = generate_fleet(args.elders, args.seed)
    days = args.hours / 24.0
    workdir = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    plain: dict[str, Sizes] | None = None
    tsdb: dict[str, Sizes] | None = None
    errors: dict[str, str] = {}
    try:
        path, start_ms, _ = record_day(fleet, args.hours, args.seed, workdir)
        if not args.skip_plain:
            schema = f"bench_storage_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
            try:
                with psycopg.connect(base) as conn:
                    row = conn.execute("SELECT version()").fetchone()
                    print(f"plain server: {row[0] if row else '?'}")
                mode = load(url, fleet, path, start_ms, WriteMethod.COPY)
                if mode is not StorageMode.POSTGRESQL:
                    raise SystemExit(f"{base} is in {mode.value} mode, not plain")
                plain = plain_sizes(url)
            finally:
                with psycopg.connect(base, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if not args.skip_timescaledb:
            proc = None
            dropped: tuple[str, str] | None = None
            if args.timescaledb_url:
                name, url = _fresh_database(args.timescaledb_url)
                dropped = (args.timescaledb_url, name)
                method, size = WriteMethod.COPY, BATCH
            else:
                proc, url = start_pglite(workdir / "pglite.log")
                method, size = WriteMethod.UNNEST, PGLITE_BATCH
            try:
                with psycopg.connect(url) as conn:
                    row = conn.execute("SELECT version()").fetchone()
                    print(f"TimescaleDB server: {row[0] if row else '?'}")
                load(url, fleet, path, start_ms, method, size)
                tsdb, errors = timescale_sizes(url)
            except psycopg.OperationalError:
                if proc is not None and proc.poll() is not None:
                    tail = (workdir / "pglite.log").read_text(errors="replace")[-1500:]
                    print(f"the pglite server exited ({proc.returncode}):\n{tail}")
                raise
            finally:
                if proc is not None:
                    proc.terminate()
                    proc.wait(30)
                if dropped is not None:
                    with psycopg.connect(dropped[0], autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{dropped[1]}" WITH (FORCE)')
        report(fleet, days, plain, tsdb, errors)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
