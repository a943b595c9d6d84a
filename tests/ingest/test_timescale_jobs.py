"""TimescaleDB mode: every policy job (compression, retention, aggregate refresh) run by hand
without a failure, after the default COPY write path on a native server ($TIMESCALEDB_TEST_URL,
a database per test). The WebAssembly build's wire server cannot take COPY FROM STDIN (it
drops the connection), so there the rows are written with UNNEST."""

from __future__ import annotations

import os

from ingest.cli import timescale_jobs
from ingest.db import connect
from ingest.migrate import StorageMode, apply_migrations, recorded_mode
from ingest.registry import import_fleet
from ingest.settings import WriteMethod
from tests.ingest.conftest import make_fleet
from tests.ingest.test_migrations import _write_stream


def test_copy_path_and_every_policy_job_in_timescaledb_mode(
    pglite_url: str, device_suffix: str
) -> None:
    fleet = make_fleet(device_suffix, per_type=1)
    with connect(pglite_url) as conn:
        apply_migrations(conn)
        assert recorded_mode(conn) is StorageMode.TIMESCALEDB
        conn.autocommit = False
        import_fleet(conn, fleet)
        method = WriteMethod.COPY if os.environ.get("TIMESCALEDB_TEST_URL") else WriteMethod.UNNEST
        counts = _write_stream(conn, fleet, method, StorageMode.TIMESCALEDB)
        assert sum(counts.values()) > 0
        conn.commit()
        conn.autocommit = True  # a policy procedure commits on its own
        jobs = conn.execute(
            "SELECT job_id, proc_name FROM timescaledb_information.jobs"
            " WHERE proc_name LIKE 'policy_%' ORDER BY job_id"
        ).fetchall()
        kinds = {str(r[1]) for r in jobs}
        assert {"policy_compression", "policy_retention"} <= kinds
        assert "policy_refresh_continuous_aggregate" in kinds
        for job_id, _ in jobs:
            conn.execute("CALL run_job(%s)", (job_id,))
        assert timescale_jobs(conn) == []
        for kind, n in counts.items():
            row = conn.execute(
                f"SELECT count(*) FROM {kind} WHERE device_id LIKE %s", (f"%{device_suffix}%",)
            ).fetchone()
            assert row is not None and row[0] == n, kind
