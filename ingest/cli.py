"""Subcommands contributed by `ingest`: `db migrate|info|stats|dead-letters`, `registry import`,
`ingest`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gateway import FleetError, ReasonCode, parse_fleet
from ingest import readback
from ingest.db import connect, dead_letter_counts, misdated_count, row_counts
from ingest.migrate import (
    TimescaleNotLoaded,
    apply_migrations,
    recorded_mode,
    storage_mode,
    timescale_problem,
)
from ingest.registry import import_fleet
from ingest.settings import IngestSettings, WriteMethod

logger = logging.getLogger(__name__)


def _settings(**overrides: Any) -> IngestSettings:
    given = {k: v for k, v in overrides.items() if v is not None}
    return IngestSettings(**given)


def _migrate(args: argparse.Namespace) -> int:
    # A migration may rewrite a large table: no statement timeout (keepalives still apply).
    with connect(_settings().database_url, statement_timeout_ms=0) as conn:
        try:
            applied = apply_migrations(conn)
        except TimescaleNotLoaded as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        mode = recorded_mode(conn)
    print(f"storage mode: {mode.value if mode else 'unknown'}")
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _info(args: argparse.Namespace) -> int:
    with connect(_settings().database_url) as conn:
        mode = recorded_mode(conn)
        detected = storage_mode(conn)
        problem = timescale_problem(conn)
        jobs = timescale_jobs(conn)
        try:
            rows = conn.execute(
                "SELECT version, variant, name FROM schema_migrations ORDER BY version, variant"
            ).fetchall()
        except Exception:
            conn.rollback()
            rows = []
    print(f"storage mode: {(mode or detected).value}" + ("" if mode else " (not migrated yet)"))
    if problem is not None:
        print(f"warning: {problem}")
    for job in jobs:
        print(f"  timescaledb job {job[0]} ({job[1]}): last run {job[2]}, {job[3]} failure(s)")
    for version, variant, name in rows:
        print(f"  {version}_{name}" + (f".{variant}" if variant else ""))
    return 0


def _stats(args: argparse.Namespace) -> int:
    with connect(_settings().database_url) as conn:
        mode = recorded_mode(conn)
        rows, dead = row_counts(conn), dead_letter_counts(conn)
        misdated = misdated_count(conn)
    if args.json:
        out = {
            "storage_mode": mode.value if mode else None,
            "rows": rows,
            "dead_letters": dead,
            "misdated": misdated,
        }
        print(json.dumps(out, sort_keys=True))
        return 0
    print(f"storage mode: {mode.value if mode else None}")
    for name, n in rows.items():
        print(f"  {name:<18} {n}")
    print(f"  {'misdated_messages':<18} {misdated}")
    for reason, n in dead.items():
        print(f"  dead {reason:<13} {n}")
    return 0


def _dead_letters(args: argparse.Namespace) -> int:
    since_ms = int((time.time() - args.since_hours * 3600) * 1000)
    with connect(_settings().database_url) as conn:
        rows = readback.dead_letters(conn, reason=args.reason, since_ms=since_ms, limit=args.limit)
    for row in rows:
        raw: bytes = row.pop("payload")
        # Payloads are kept whole in the table; the listing shows a readable prefix.
        row["payload"] = raw[:300].decode("utf-8", "backslashreplace")
        row["payload_bytes"] = len(raw)
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            print(f"{row['received_ms']} {row['reason']:<14} {row['topic']}  {row['detail']}")
            print(f"    {row['payload']!r} ({len(raw)} bytes)")
    return 0


def _import(args: argparse.Namespace) -> int:
    try:
        fleet = parse_fleet(Path(args.fleet).read_bytes())
    except OSError as exc:
        print(f"cannot read {args.fleet}: {exc}", file=sys.stderr)
        return 2
    except FleetError as exc:
        print(f"{args.fleet}: {len(exc.errors)} error(s); nothing imported", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    with connect(_settings().database_url) as conn:
        result = import_fleet(conn, fleet)
    print(
        f"{len(fleet.care_centers)} centre(s), {len(fleet.elders)} elder(s),"
        f" {len(fleet.devices)} device(s); {result.changed} row(s) changed"
    )
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from ingest.service import IngestService

    settings = _settings(
        topic_prefix=args.prefix,
        metrics_port=args.metrics_port,
        client_id=args.client_id,
        batch_max=args.batch_max,
        write_method=args.write_method,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _lower_priority(settings.nice)
    IngestService(settings).run(stop)
    return 0


def _lower_priority(nice: int) -> None:
    """Run at niceness `nice` (never raised back: that needs privileges).

    Linux keeps a nice value per thread, and new threads inherit their creator's: this sets
    every thread that exists (numpy's BLAS starts some at import) before the service starts
    its own.
    """
    tasks = Path("/proc/self/task")
    tids = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]
    for tid in tids:
        try:
            if nice > os.getpriority(os.PRIO_PROCESS, tid):
                os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError:  # a thread that ended meanwhile
            continue
    logger.info("running at nice %d (INGEST_NICE)", os.getpriority(os.PRIO_PROCESS, 0))


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register this package's subcommands."""
    db = sub.add_parser("db", help="database schema and statistics")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("migrate", help="apply pending migrations").set_defaults(handler=_migrate)
    db_sub.add_parser("info", help="print the storage mode and migrations").set_defaults(
        handler=_info
    )
    stats = db_sub.add_parser("stats", help="rows per series and dead letters per reason")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(handler=_stats)

    dead = db_sub.add_parser("dead-letters", help="list rejected messages, newest first")
    dead.add_argument("--reason", choices=[r.value for r in ReasonCode], help="only this reason")
    dead.add_argument("--since-hours", type=float, default=24.0, help="window (default 24)")
    dead.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    dead.add_argument("--json", action="store_true", help="one JSON object per line")
    dead.set_defaults(handler=_dead_letters)
    _add_backup_commands(db_sub)
    _add_roles_command(db_sub)

    registry = sub.add_parser("registry", help="the device registry")
    reg_sub = registry.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    imp = reg_sub.add_parser("import", help="import a fleet file (contract §3)")
    imp.add_argument("fleet", help="path of the fleet JSON file")
    imp.set_defaults(handler=_import)

    ing = sub.add_parser("ingest", help="consume device messages into the database")
    ing.add_argument("--prefix", help="topic prefix before eldercare/v1 (INGEST_TOPIC_PREFIX)")
    ing.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    ing.add_argument("--client-id", help="MQTT client id (a persistent session per id)")
    ing.add_argument("--batch-max", type=int, help="messages per batch at most")
    ing.add_argument("--write-method", choices=[m.value for m in WriteMethod])
    ing.set_defaults(handler=_ingest)


def _backup(args: argparse.Namespace) -> int:
    from ingest.backup import BackupError, backup

    try:
        out = backup(_settings().database_url, args.out)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from ingest.backup import BackupError, restore, row_counts

    url = _settings().database_url
    try:
        restore(url, args.dump)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = row_counts(url)
    print(f"restored {len(counts)} tables, {sum(counts.values())} rows from {args.dump}")
    return 0


def _add_backup_commands(db_sub: argparse._SubParsersAction[Any]) -> None:
    bk = db_sub.add_parser("backup", help="dump the database to a file (pg_dump custom format)")
    bk.add_argument("--out", type=Path, required=True, help="the dump file to write")
    bk.set_defaults(handler=_backup)
    rs = db_sub.add_parser(
        "restore", help="restore a dump into the empty database at $DATABASE_URL"
    )
    rs.add_argument("dump", type=Path, help="a file written by `db backup`")
    rs.set_defaults(handler=_restore)
    ret = db_sub.add_parser(
        "retention", help="drop partitions and diagnostic rows older than their kept days"
    )
    ret.set_defaults(handler=_retention)


def _retention(args: argparse.Namespace) -> int:
    from ingest.retention import apply_retention

    with connect(_settings().database_url, autocommit=True, statement_timeout_ms=0) as conn:
        result = apply_retention(conn, int(time.time() * 1000))
    dropped = sum(len(v) for v in result.dropped.values())
    print(f"dropped {dropped} partition(s); deleted {json.dumps(result.deleted)}")
    return 0


def timescale_jobs(conn: Any) -> list[tuple[Any, ...]]:
    """TimescaleDB background jobs whose last run failed, or that are overdue by an hour
    (`timescaledb_information.job_stats`); empty in plain mode."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None:
        return []
    rows: list[tuple[Any, ...]] = conn.execute(
        "SELECT j.job_id, j.proc_name, s.last_run_status, s.total_failures"
        " FROM timescaledb_information.jobs j"
        " JOIN timescaledb_information.job_stats s USING (job_id)"
        " WHERE s.last_run_status = 'Failed' OR s.next_start < now() - interval '1 hour'"
    ).fetchall()
    return rows


def _roles(args: argparse.Namespace) -> int:
    import os

    from ingest.roles import apply_roles, passwords_from

    with connect(_settings().database_url, autocommit=True) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
        schema = args.schema or (str(row[0]) if row else "public")
        made = apply_roles(conn, schema, prefix=args.prefix, passwords=passwords_from(os.environ))
    print(f"schema {schema}: " + ", ".join(made))
    return 0


def _add_roles_command(db_sub: argparse._SubParsersAction[Any]) -> None:
    roles = db_sub.add_parser(
        "roles",
        help="least-privilege group roles per service (and LOGIN users for"
        " ELDERCARE_DB_PASSWORD_<SERVICE>[_FILE]); re-run after every migrate",
    )
    roles.add_argument("--schema", help="the platform's schema (default: the current one)")
    roles.add_argument("--prefix", default="eldercare_", help="role name prefix")
    roles.set_defaults(handler=_roles)
