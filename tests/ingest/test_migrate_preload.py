"""TimescaleDB installed but not preloaded: a clear message with the fix, not two tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ingest.migrate import PRELOAD_FIX, preload_problem


@pytest.mark.parametrize(
    ("installed", "available", "preload", "problem"),
    [
        (False, True, "", True),  # the state after `apt install timescaledb-2-postgresql-15`
        (False, True, "pg_stat_statements", True),
        (False, True, "pg_stat_statements, timescaledb", False),
        (False, True, '"timescaledb"', False),
        (True, True, "", False),  # already created: the server loads it (or says so itself)
        (False, False, "", False),  # plain PostgreSQL: plain mode, nothing to fix
    ],
)
def test_preload_problem(installed: bool, available: bool, preload: str, problem: bool) -> None:
    found = preload_problem(installed, available, preload)
    assert (found == PRELOAD_FIX) is problem
    if problem:
        assert "shared_preload_libraries" in PRELOAD_FIX and "restart" in PRELOAD_FIX


def test_db_info_on_plain_postgresql_has_no_warning(migrated_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eldercare", "db", "info"],
        env={**os.environ, "DATABASE_URL": migrated_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("storage mode: postgresql") and "warning" not in done.stdout
