"""Fixtures for tests against the real Mosquitto and PostgreSQL.

Each test gets its own topic prefix and its own database schema, so tests can
run side by side on one broker and one database without colliding. A missing
service fails the run; it never skips.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from gateway.mqtt import DEFAULT_MQTT_URL, parse_mqtt_url
from ingest.settings import DEFAULT_DATABASE_URL


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """The broker under test ($MQTT_URL, else the local Mosquitto); must be reachable."""
    url = os.environ.get("MQTT_URL", DEFAULT_MQTT_URL)
    addr = parse_mqtt_url(url)
    try:
        socket.create_connection((addr.host, addr.port), timeout=3).close()
    except OSError as exc:
        pytest.fail(f"MQTT broker {url} is not reachable: {exc}")
    return url


@pytest.fixture(scope="session")
def database_url() -> str:
    """The PostgreSQL server under test ($DATABASE_URL, else local trust auth)."""
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL {url} is not reachable: {exc}")
    return url


@pytest.fixture
def topic_prefix() -> str:
    """A topic namespace of this test alone, e.g. `t3f2a9c1b/`."""
    return f"t{uuid.uuid4().hex[:10]}/"


@pytest.fixture
def device_suffix() -> str:
    """A suffix that makes this test's device ids unique on the shared broker."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def db_schema(database_url: str) -> Iterator[str]:
    """A fresh empty schema of this test alone, dropped afterwards; yields its name."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def schema_url(database_url: str, db_schema: str) -> str:
    """A DATABASE_URL whose connections use this test's schema (via `search_path`)."""
    sep = "&" if "?" in database_url else "?"
    return f"{database_url}{sep}options=-csearch_path%3D{db_schema}"
