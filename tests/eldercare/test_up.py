"""`eldercare up`, the README's run command, end to end on a small district."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import psycopg
import pytest


@pytest.mark.slow
def test_up_runs_the_platform_and_stores_the_district(
    mqtt_url: str, schema_url: str, topic_prefix: str
) -> None:
    env = {**os.environ, "MQTT_URL": mqtt_url, "DATABASE_URL": schema_url}
    cmd = [
        sys.executable,
        "-m",
        "eldercare",
        "up",
        "--elders",
        "15",
        "--duration",
        "12",
        "--every",
        "3",
        "--prefix",
        topic_prefix,
        "--seed",
        "4",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = re.findall(
        r"devices online (\d+)/(\d+) .* stored (\d+) \| dead letters (\d+)", done.stderr
    )
    assert lines, done.stderr[-3000:]
    online, devices, stored, dead = map(int, lines[-1])
    assert online == devices > 0 and stored > 0 and dead == 0
    with psycopg.connect(schema_url) as conn:
        registered = conn.execute("SELECT count(*) FROM devices").fetchone()
        seen = conn.execute("SELECT count(DISTINCT device_id) FROM device_status").fetchone()
    assert registered is not None and registered[0] == devices
    assert seen is not None and seen[0] == devices
