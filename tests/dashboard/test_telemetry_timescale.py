"""time_bucket on TimescaleDB (pglite) cuts the same buckets as date_bin on plain PostgreSQL."""

from __future__ import annotations

import time

from dashboard.queries.telemetry import bucketed
from gateway import Fleet, parse_fleet
from ingest.db import connect
from ingest.migrate import StorageMode, apply_migrations, storage_mode
from ingest.registry import import_fleet
from tests.dashboard.telemetry_rows import add_band
from tests.ingest.conftest import pglite_url  # noqa: F401  (the session fixture)

MIN = 60_000


def _fleet(suffix: str) -> Fleet:
    return parse_fleet(
        {
            "elders": [{"id": f"el-{suffix}", "name": "E", "home_lat": 39.93, "home_lon": 116.37}],
            "devices": [{"id": f"band-{suffix}", "type": "band", "elder_id": f"el-{suffix}"}],
        }
    )


def test_time_bucket_and_date_bin_agree(pglite_url: str, device_suffix: str) -> None:  # noqa: F811
    device = f"band-{device_suffix}"
    t0 = (int(time.time() * 1000) // (15 * MIN) - 8) * 15 * MIN + 7 * MIN  # off the hour grid
    rows = [(t0 + k * 97_000, 39.93, 116.37, 60 + k, k) for k in range(40)]
    with connect(pglite_url) as conn:
        assert storage_mode(conn) is StorageMode.TIMESCALEDB
        conn.rollback()
        apply_migrations(conn)
        import_fleet(conn, _fleet(device_suffix))
        add_band(conn, device, rows)
        conn.commit()
        args = (device, "band", t0 - 20 * MIN, t0 + 80 * MIN, 900)
        ts_points = bucketed(conn, StorageMode.TIMESCALEDB, *args)
        plain_points = bucketed(conn, StorageMode.POSTGRESQL, *args)
        conn.rollback()
    assert ts_points == plain_points
    assert sum(p["n"] or 0 for p in ts_points) == 40
    assert all(p["ts"] % (15 * MIN) == 0 for p in ts_points)  # 15-min buckets on the hour grid
    assert ts_points[0]["ts"] == t0 - 7 * MIN and ts_points[0]["steps"] == sum(range(5))
