"""`eldercare db backup|restore`: a dump restored into a fresh database holds every row."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from ingest.backup import BackupError, restore, row_counts
from ingest.batch import Inbound, build_batch
from ingest.db import BatchWriter, connect
from ingest.migrate import apply_migrations, storage_mode
from ingest.registry import import_fleet, load_registry
from ingest.settings import WriteMethod
from tests.ingest.conftest import make_fleet
from tests.ingest.streams import now_ms, valid_messages, wire


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}", query=""))


@pytest.fixture
def two_databases(database_url: str) -> Iterator[tuple[str, str]]:
    """A source and an empty target database of this test alone, dropped afterwards."""
    names = [f"bk_{uuid.uuid4().hex[:10]}", f"rs_{uuid.uuid4().hex[:10]}"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(database_url, names[0]), _with_db(database_url, names[1])
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fill(url: str, suffix: str) -> None:
    fleet = make_fleet(suffix, per_type=3)
    with connect(url) as conn:
        apply_migrations(conn)
        import_fleet(conn, fleet)
        mode = storage_mode(conn)
        registry = load_registry(conn)
        conn.commit()
        messages = valid_messages(fleet, per_device=20, rng=random.Random(3))
        items = [Inbound(t, p, now_ms()) for t, p in wire(messages, "")]
        BatchWriter(WriteMethod.COPY, mode).write(conn, build_batch(items, registry))
        conn.commit()


def _cli(env_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": env_url}
    return subprocess.run(
        [sys.executable, "-m", "eldercare", "db", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_backup_restores_every_row_into_a_fresh_database(
    two_databases: tuple[str, str], device_suffix: str, tmp_path: Path
) -> None:
    source, target = two_databases
    _fill(source, device_suffix)
    before = row_counts(source)
    assert before["devices"] > 0 and sum(before.values()) > 100
    dump = tmp_path / "eldercare.dump"
    done = _cli(source, "backup", "--out", str(dump))
    assert done.returncode == 0, done.stderr
    assert dump.stat().st_size > 0
    done = _cli(target, "restore", str(dump))
    assert done.returncode == 0, done.stderr
    assert row_counts(target) == before
    # The restored database is the platform's: migrations see nothing to do.
    with connect(target) as conn:
        assert apply_migrations(conn) == []
    # A second restore on top is refused rather than mixing two copies.
    with pytest.raises(BackupError, match="not empty"):
        restore(target, dump)
