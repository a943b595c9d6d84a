"""Numbered SQL migrations: applied in order, recorded, safe to run twice.

Files in `ingest/migrations/` are named `NNN_name.sql` (always applied),
`NNN_name.timescale.sql` (only where the TimescaleDB extension is available) or
`NNN_name.plain.sql` (only on plain PostgreSQL). The mode is decided once per
database by `storage_mode` and recorded, so a database never mixes the two.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

_LOCK_KEY = 0x656C6465  # arbitrary advisory-lock key shared by every migrating process


class StorageMode(StrEnum):
    """Which storage features the database offers."""

    TIMESCALEDB = "timescaledb"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    variant: str | None
    sql: str


# The usual state right after a distribution package install: the extension files are there,
# but the library is not preloaded, and CREATE EXTENSION fails (TimescaleDB's install guide).
PRELOAD_FIX = (
    "TimescaleDB is installed but not loaded: add timescaledb to shared_preload_libraries in "
    "postgresql.conf (shared_preload_libraries = 'timescaledb', or run timescaledb-tune), "
    "restart PostgreSQL, then run `eldercare db migrate` again"
)


class TimescaleNotLoaded(RuntimeError):
    """TimescaleDB mode was chosen but the server does not preload the library."""


def preload_problem(installed: bool, available: bool, preload: str) -> str | None:
    """Why TimescaleDB cannot be used although it is available, or None.

    Args:
        installed: the extension is created in this database.
        available: the server has the extension's files.
        preload: the server's `shared_preload_libraries` setting.
    """
    if installed or not available:
        return None
    libraries = {part.strip().strip('"') for part in preload.split(",")}
    return None if "timescaledb" in libraries else PRELOAD_FIX


def timescale_problem(conn: psycopg.Connection[Any]) -> str | None:
    """`preload_problem` for the server behind `conn`."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),"
        " current_setting('shared_preload_libraries')"
    ).fetchone()
    assert row is not None
    return preload_problem(bool(row[0]), bool(row[1]), str(row[2]))


def _create_timescale(conn: psycopg.Connection[Any]) -> None:
    """CREATE EXTENSION, or TimescaleNotLoaded with the fix when the library is not preloaded
    (TimescaleDB refuses with "extension "timescaledb" must be preloaded")."""
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        if "preload" in str(exc):
            raise TimescaleNotLoaded(PRELOAD_FIX) from exc
        raise


def storage_mode(conn: psycopg.Connection[Any]) -> StorageMode:
    """Say which mode is in use: TimescaleDB when its extension is installed or installable."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
    ).fetchone()
    assert row is not None
    installed, available = bool(row[0]), bool(row[1])
    return StorageMode.TIMESCALEDB if installed or available else StorageMode.POSTGRESQL


def available_migrations() -> list[Migration]:
    """Every migration file shipped with the package, in order."""
    out = []
    for entry in resources.files("ingest.migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        stem = entry.name[: -len(".sql")]
        base, _, variant = stem.partition(".")
        version, _, name = base.partition("_")
        out.append(Migration(version, name, variant or None, entry.read_text(encoding="utf-8")))
    return sorted(out, key=lambda m: (m.version, m.variant or ""))


def _wanted(migration: Migration, mode: StorageMode) -> bool:
    if migration.variant is None:
        return True
    return (migration.variant == "timescale") == (mode is StorageMode.TIMESCALEDB)


def apply_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction.

    Returns:
        The file stems applied by this call (empty when up to date).
    """
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text NOT NULL, variant text NOT NULL DEFAULT '', name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (version, variant))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS storage_settings"
            " (key text PRIMARY KEY, value text NOT NULL)"
        )
        row = conn.execute("SELECT value FROM storage_settings WHERE key = 'mode'").fetchone()
        mode = StorageMode(row[0]) if row else storage_mode(conn)
        if mode is StorageMode.TIMESCALEDB:
            _create_timescale(conn)
        conn.execute(
            "INSERT INTO storage_settings VALUES ('mode', %s) ON CONFLICT (key) DO NOTHING",
            (mode.value,),
        )
        done = {
            (v, var)
            for v, var in conn.execute("SELECT version, variant FROM schema_migrations").fetchall()
        }
        applied = []
        for mig in available_migrations():
            if not _wanted(mig, mode) or (mig.version, mig.variant or "") in done:
                continue
            with conn.transaction():
                conn.execute(mig.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, variant, name) VALUES (%s, %s, %s)",
                    (mig.version, mig.variant or "", mig.name),
                )
            stem = f"{mig.version}_{mig.name}" + (f".{mig.variant}" if mig.variant else "")
            logger.info("applied migration %s", stem)
            applied.append(stem)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def recorded_mode(conn: psycopg.Connection[Any]) -> StorageMode | None:
    """The mode recorded by `apply_migrations`, or None before the first migration."""
    try:
        row = conn.execute("SELECT value FROM storage_settings WHERE key = 'mode'").fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return None
    return StorageMode(row[0]) if row else None
