"""TimescaleDB's background jobs on ingest's /metrics: a job whose last run failed, or that is
long overdue, shows up there; in plain mode only the storage mode is reported.

The WebAssembly TimescaleDB has no background scheduler, and `CALL run_job` in the foreground
records no failure, so the test writes what the scheduler records after a failed run (the row
of `_timescaledb_internal.bgw_job_stat` behind `timescaledb_information.job_stats`)."""

from __future__ import annotations

import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families

from ingest.db import connect
from ingest.metrics import IngestMetrics, TimescaleJobs
from ingest.migrate import apply_migrations


def _scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _of_job(samples: list[tuple[dict[str, str], float]], job_id: int) -> float | None:
    values = [v for labels, v in samples if labels.get("job_id") == str(job_id)]
    return values[0] if values else None


def test_failed_and_stalled_jobs_show_on_metrics(pglite_url: str) -> None:
    proc = f"eldercare_test_boom_{uuid.uuid4().hex[:8]}"
    with connect(pglite_url, autocommit=True) as conn:
        apply_migrations(conn)
        conn.execute(
            f"CREATE PROCEDURE {proc}(job_id int, config jsonb) LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$"
        )
        row = conn.execute("SELECT add_job(%s::regproc, '1 hour')", (proc,)).fetchone()
        assert row is not None
        job_id = int(row[0])
    metrics = IngestMetrics()
    metrics.watch_jobs(pglite_url, refresh_s=0.01)
    port = metrics.serve(0)
    try:
        before = _scrape(port)
        assert ({"mode": "timescaledb"}, 1.0) in before["eldercare_storage_mode"]
        assert _of_job(before["eldercare_timescaledb_job_failed"], job_id) == 0.0
        assert _of_job(before["eldercare_timescaledb_job_stalled"], job_id) == 0.0
        with connect(pglite_url, autocommit=True) as conn:
            # What the scheduler writes after a failed run whose retry is two hours overdue.
            conn.execute(
                "DELETE FROM _timescaledb_internal.bgw_job_stat WHERE job_id = %s", (job_id,)
            )
            conn.execute(
                "INSERT INTO _timescaledb_internal.bgw_job_stat (job_id, last_start,"
                " last_finish, next_start, last_successful_finish, last_run_success,"
                " total_runs, total_duration, total_duration_failures, total_successes,"
                " total_failures, total_crashes, consecutive_failures, consecutive_crashes,"
                " flags) VALUES (%s, now() - interval '3 hours', now() - interval '3 hours',"
                " now() - interval '2 hours', '-infinity', false, 1, '1 s', '1 s', 0, 1, 0,"
                " 1, 0, 0)",
                (job_id,),
            )
        after = _scrape(port)
        assert _of_job(after["eldercare_timescaledb_job_failed"], job_id) == 1.0
        assert _of_job(after["eldercare_timescaledb_job_stalled"], job_id) == 1.0
        assert _of_job(after["eldercare_timescaledb_job_failures"], job_id) == 1.0
        failed = after["eldercare_timescaledb_job_failed"]
        labels = next(lbl for lbl, _ in failed if lbl["job_id"] == str(job_id))
        assert labels["proc"] == proc and labels["hypertable"] == ""
        assert after["eldercare_timescaledb_jobs_failed"][0][1] >= 1.0
        assert after["eldercare_timescaledb_jobs_stalled"][0][1] >= 1.0
    finally:
        metrics.close()
        with connect(pglite_url, autocommit=True) as conn:
            conn.execute("SELECT delete_job(%s)", (job_id,))
            conn.execute(f"DROP PROCEDURE {proc}")


def test_plain_mode_reports_the_mode_and_no_job(migrated_url: str) -> None:
    metrics = IngestMetrics()
    metrics.watch_jobs(migrated_url)
    port = metrics.serve(0)
    try:
        scraped = _scrape(port)
    finally:
        metrics.close()
    assert scraped["eldercare_storage_mode"] == [({"mode": "postgresql"}, 1.0)]
    assert "eldercare_timescaledb_jobs_checked_timestamp_seconds" in scraped
    assert not any(
        name.startswith("eldercare_timescaledb_job") and "checked" not in name for name in scraped
    )


def test_reads_at_most_once_per_refresh_interval(migrated_url: str) -> None:
    now = [0.0]
    jobs = TimescaleJobs(migrated_url, refresh_s=60.0, monotonic=lambda: now[0])
    first = jobs.snapshot()
    assert first is not None
    assert jobs.snapshot() is first  # within the interval: no new read
    now[0] = 60.0
    assert jobs.snapshot() is not first


def test_an_unreachable_database_keeps_the_last_snapshot(migrated_url: str) -> None:
    now = [0.0]
    jobs = TimescaleJobs(migrated_url, refresh_s=1.0, monotonic=lambda: now[0])
    first = jobs.snapshot()
    jobs._url = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"
    now[0] = 5.0
    assert jobs.snapshot() is first
    never = TimescaleJobs("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
    assert never.snapshot() is None and list(never.collect()) == []
