"""`eldercare up`, the README's run command, end to end on a small district."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

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


def _up(env: dict[str, str], prefix: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "eldercare",
        "up",
        "--elders",
        "5",
        "--prefix",
        prefix,
        "--every",
        "1",
        *extra,
    ]


def test_up_refuses_a_broker_that_does_not_speak_mqtt5(
    database_url: str, schema_url: str, topic_prefix: str
) -> None:
    pg = urlsplit(database_url)
    env = {
        **os.environ,
        "MQTT_URL": f"mqtt://{pg.hostname}:{pg.port or 5432}",
        "DATABASE_URL": schema_url,
    }
    done = subprocess.run(
        _up(env, topic_prefix, "--duration", "5"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "MQTT 5" in done.stderr and "MQTT_URL" in done.stderr, done.stderr[-3000:]
    assert "devices online" not in done.stderr


def test_up_exits_when_a_service_does_not_become_ready(
    mqtt_url: str, schema_url: str, topic_prefix: str
) -> None:
    # No service connects to the database and the broker and subscribes within 1 ms.
    env = {**os.environ, "MQTT_URL": mqtt_url, "DATABASE_URL": schema_url}
    started = time.monotonic()
    done = subprocess.run(
        _up(env, topic_prefix, "--duration", "120", "--ready-timeout", "0.001"),
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    took_s = time.monotonic() - started
    assert done.returncode == 1, done.stderr[-3000:]
    # Whichever service is checked first and not ready yet (ingest may already be, on a
    # loaded machine, by the time the checks start).
    assert re.search(
        r"eldercare up: (ingest|alerting) did not become ready within 0\.001 s; stopping",
        done.stderr,
    ), done.stderr[-3000:]
    assert "devices online" not in done.stderr  # the district never started
    assert took_s < 90  # it stopped what it started instead of running on


@pytest.mark.slow
def test_up_exits_when_a_service_dies_while_running(
    mqtt_url: str, schema_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = {**os.environ, "MQTT_URL": mqtt_url, "DATABASE_URL": schema_url}
    log = tmp_path / "up.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            _up(env, topic_prefix, "--duration", "300", "--speed", "10"), env=env, stderr=out
        )
    try:
        deadline = time.monotonic() + 90
        while not re.search(r"stored [1-9]", log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        # The storage disappears under ingest: a fault no retry can fix.
        with psycopg.connect(schema_url, autocommit=True) as conn:
            conn.execute(
                "DROP TABLE smoke_telemetry, band_telemetry, cane_telemetry, device_events,"
                " device_status CASCADE"
            )
        code = proc.wait(90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert code == 1, text[-3000:]
    assert "eldercare up: ingest stopped while running (UndefinedTable" in text, text[-3000:]
