"""Cane windows go to PostgreSQL as `real[]` through ingest's own binary dumper: every
coordinate in order (x0, y0, z0, x1, ...), rounded to float4 as PostgreSQL's own cast does."""

from __future__ import annotations

import random

import psycopg
from psycopg import sql

from ingest.db import Float4WindowDumper


def test_windows_round_trip_as_float4_of_each_coordinate_in_order(schema_url: str) -> None:
    rng = random.Random(7)
    windows = [
        tuple((rng.uniform(-16, 16), rng.gauss(0, 1), rng.random()) for _ in range(n))
        for n in (1, 2, 100, 250)
    ]
    windows.append(((0.0, -0.0, 1e-45), (3.4e38, -3.4e38, 1.0000000596046448), (0.1, 0.2, 0.3)))
    with psycopg.connect(schema_url) as conn:
        conn.execute("CREATE TEMP TABLE w (k int, a real[])")
        with conn.cursor() as cur:
            cur.adapters.register_dumper(None, Float4WindowDumper)
            with cur.copy(sql.SQL("COPY w FROM STDIN (FORMAT BINARY)")) as copy:
                copy.set_types(["int4", "real[]"])
                for k, window in enumerate(windows):
                    copy.write_row([k, window])
        for k, window in enumerate(windows):
            flat = [c for sample in window for c in sample]
            stored, cast = conn.execute(
                "SELECT a, %s::float8[]::real[] FROM w WHERE k = %s", (flat, k)
            ).fetchone()
            assert stored == cast, k
            assert len(stored) == 3 * len(window)
