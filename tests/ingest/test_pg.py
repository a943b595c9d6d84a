"""Service connections carry statement and keepalive timeouts and keep a URL's own options."""

from __future__ import annotations

import psycopg
import pytest

from ingest.pg import connect


def test_statement_timeout_cancels_a_stuck_statement(schema_url: str, db_schema: str) -> None:
    with connect(schema_url, autocommit=True, statement_timeout_ms=200) as conn:
        assert conn.execute("SHOW search_path").fetchone() == (db_schema,)
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(2)")


def test_keepalives_are_on(database_url: str) -> None:
    with connect(database_url) as conn:
        params = conn.info.get_parameters()
        assert params.get("keepalives") == "1"
        assert params.get("tcp_user_timeout") == "20000"
        assert params.get("application_name") == "eldercare"
