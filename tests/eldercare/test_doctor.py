"""`eldercare doctor` against broken set-ups: each fault is named, with its fix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from eldercare.broker import SecuredBroker, start_secured_broker, stop
from ingest.migrate import apply_migrations


def _doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eldercare", "doctor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")}
    env.update(extra)
    return env


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def secured(schema_url: str) -> Iterator[SecuredBroker]:
    with psycopg.connect(schema_url, autocommit=True) as conn:
        apply_migrations(conn)
    broker = start_secured_broker(schema_url)
    yield broker
    stop(broker.proc)


def test_database_down_is_named_with_its_fix(mqtt_url: str) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{_dead_port()}/eldercare"
    done = _doctor(_env(DATABASE_URL=url, MQTT_URL=mqtt_url), "--only", "database")
    assert done.returncode == 1
    assert "FAIL database: cannot connect to" in done.stdout
    assert "hunter2" not in done.stdout  # the password is not printed
    assert "fix: start PostgreSQL" in done.stdout


def test_unmigrated_database_is_named(schema_url: str) -> None:
    done = _doctor(_env(DATABASE_URL=schema_url), "--only", "database")
    assert done.returncode == 1
    assert "FAIL schema: not migrated" in done.stdout and "eldercare db migrate" in done.stdout


def test_wrong_broker_password_is_named(schema_url: str, secured: SecuredBroker) -> None:
    good = urlsplit(secured.logins["ingest"])
    bad = urlunsplit(good._replace(netloc=f"{good.username}:wrong@{good.hostname}:{good.port}"))
    done = _doctor(_env(DATABASE_URL=schema_url, MQTT_URL=bad), "--only", "broker")
    assert done.returncode == 1, done.stdout
    assert "FAIL broker:" in done.stdout and "bad user name or password" in done.stdout
    assert "wrong" not in done.stdout


def test_healthy_deployment_passes(schema_url: str, secured: SecuredBroker) -> None:
    with psycopg.connect(schema_url, autocommit=True) as conn:
        apply_migrations(conn)
    env = _env(DATABASE_URL=schema_url, MQTT_URL=secured.logins["ingest"])
    done = _doctor(env, "--only", "database", "--only", "broker", "--only", "clock")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   broker acl: anonymous clients are refused" in done.stdout
    assert "ok   schema: up to date" in done.stdout


def test_open_broker_and_dead_health_url_are_faults(mqtt_url: str) -> None:
    # The shared test broker lets anyone in: the ACL check must say so.
    health = f"http://127.0.0.1:{_dead_port()}/healthz"
    done = _doctor(
        _env(MQTT_URL=mqtt_url), "--only", "broker", "--only", "health", "--health", health
    )
    assert done.returncode == 1
    assert "FAIL broker acl: the broker accepts anonymous clients" in done.stdout
    assert f"FAIL health: {health}" in done.stdout
