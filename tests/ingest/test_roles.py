"""Least-privilege database roles on the shared PostgreSQL: each service can do its job and
nothing else; no service can run DDL. Roles are cluster-wide, so each test uses its own
prefix and drops its roles afterwards."""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from alerting import store
from ingest import readback
from ingest.db import dead_letter_counts, row_counts
from ingest.migrate import apply_migrations
from ingest.registry import import_fleet
from ingest.roles import apply_roles, drop_roles, login_name, passwords_from, role_name
from tests.gateway.auth_broker import cli
from tests.ingest.conftest import Publisher, make_fleet, running, settings_for
from tests.ingest.streams import valid_messages, wire


@pytest.fixture
def roles(database_url: str, schema_url: str, db_schema: str) -> Iterator[str]:
    """A migrated schema with this test's roles; yields the role prefix."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    with psycopg.connect(schema_url, autocommit=True) as conn:
        apply_migrations(conn)
        conn.execute(
            "INSERT INTO elders (id, name, home_lat, home_lon) VALUES ('el-1', 'E', 39.9, 116.3)"
        )
        conn.execute("INSERT INTO devices (id, type, elder_id) VALUES ('band-1', 'band', 'el-1')")
        pw = {
            s: SecretStr(uuid.uuid4().hex) for s in ("ingest", "alerting", "dashboard", "readonly")
        }
        apply_roles(conn, db_schema, prefix=prefix, passwords=pw)
        if _has_partitions(conn):  # this week's partition, made by the owner
            conn.execute("SELECT ensure_week_partitions('band_telemetry'::regclass, %s)", ([NOW],))
    try:
        yield prefix
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{db_schema}" CASCADE')
            drop_roles(conn, prefix)


def _as(database_url: str, schema: str, user: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        database_url, user=user, options=f"-csearch_path={schema}", autocommit=True
    )


def _has_partitions(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    fn = "ensure_week_partitions(regclass,timestamptz[])"
    return conn.execute("SELECT to_regprocedure(%s)", (fn,)).fetchone() != (None,)


def _insert_band(conn: psycopg.Connection[tuple[object, ...]], at: dt.datetime) -> None:
    conn.execute(
        "INSERT INTO band_telemetry (time, device_id, seq, lat, lon, hacc_m, received_at)"
        " VALUES (%s, 'band-1', 1, 39.9, 116.3, 5, now())",
        (at,),
    )


NOW = dt.datetime.now(dt.UTC)


def test_ingest_writes_telemetry_but_cannot_read_hashes_or_alter(
    database_url: str, db_schema: str, roles: str
) -> None:
    with _as(database_url, db_schema, login_name("ingest", roles)) as conn:
        later = NOW + dt.timedelta(days=8)
        if _has_partitions(conn):  # plain mode: ingest makes next week's partition itself
            conn.execute(
                "SELECT ensure_week_partitions('band_telemetry'::regclass, %s)", ([later],)
            )
        _insert_band(conn, later)
        assert conn.execute("SELECT count(*) FROM band_telemetry").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM devices").fetchone() == (1,)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT password_hash FROM users")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT password_hash FROM mqtt_accounts")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE band_telemetry ADD COLUMN spoofed int")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE stash (x int)")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("DELETE FROM band_telemetry")


def test_alerting_keeps_its_progress_and_reads_stored_impacts(
    database_url: str, db_schema: str, roles: str
) -> None:
    now_ms = int(time.time() * 1000)
    with _as(database_url, db_schema, login_name("alerting", roles)) as conn:
        store.save_progress(conn, "whole", now_ms)
        assert store.load_progress(conn, "whole") == now_ms
        assert readback.cane_impacts(conn, now_ms - 60_000, now_ms, 1.6) == []
        assert readback.cane_windows(conn, "cane-1", [(now_ms - 60_000, now_ms)]) == []
        assert store.fall_alert_near(conn, "cane-1", now_ms - 60_000, now_ms) is None
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("DELETE FROM cane_telemetry")


def test_dashboard_cannot_write_telemetry(database_url: str, db_schema: str, roles: str) -> None:
    with _as(database_url, db_schema, login_name("dashboard", roles)) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
        with pytest.raises(errors.InsufficientPrivilege):
            _insert_band(conn, NOW)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("DROP TABLE audit")


@pytest.mark.parametrize("service", ["ingest", "alerting", "dashboard", "notify", "readonly"])
def test_no_service_role_runs_ddl_or_is_privileged(
    database_url: str, db_schema: str, roles: str, service: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        # The owner could write this row: the refusals below are about the role.
        conn.execute(f'SET search_path = "{db_schema}"')
        _insert_band(conn, NOW)
        row = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin FROM pg_roles"
            " WHERE rolname = %s",
            (role_name(service, roles),),
        ).fetchone()
        assert row == (False, False, False, False)
        conn.execute(f'SET search_path = "{db_schema}"')
        conn.execute(f'SET ROLE "{role_name(service, roles)}"')
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("CREATE INDEX ON alerts (kind)")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("TRUNCATE devices")
        conn.execute("RESET ROLE")


def test_readonly_reads_alerts_but_no_secrets(
    database_url: str, db_schema: str, roles: str
) -> None:
    with _as(database_url, db_schema, login_name("readonly", roles)) as conn:
        conn.execute("SELECT count(*) FROM alerts")
        for table in ("users", "user_sessions", "mqtt_accounts", "notify_keys"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {table}")


def test_cli_makes_login_users_from_password_files(
    database_url: str,
    schema_url: str,
    db_schema: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    secret = tmp_path / "ingest.pw"
    secret.write_text("s3cret-from-file\n")
    monkeypatch.setenv("ELDERCARE_DB_PASSWORD_INGEST_FILE", str(secret))
    assert (
        passwords_from({"ELDERCARE_DB_PASSWORD_INGEST_FILE": str(secret)})[
            "ingest"
        ].get_secret_value()
        == "s3cret-from-file"
    )
    with psycopg.connect(schema_url, autocommit=True) as conn:
        apply_migrations(conn)
    try:
        done = cli(schema_url, "db", "roles", "--prefix", prefix)
        assert done.returncode == 0, done.stderr
        assert "s3cret" not in done.stdout
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT r.rolcanlogin, r.rolsuper, pg_has_role(r.oid, %s, 'MEMBER')"
                " FROM pg_roles r WHERE r.rolname = %s",
                (role_name("ingest", prefix), login_name("ingest", prefix)),
            ).fetchone()
            assert row == (True, False, True)
            assert conn.execute(
                "SELECT count(*) FROM pg_roles WHERE rolname = %s",
                (login_name("alerting", prefix),),
            ).fetchone() == (0,)
            # Running it again changes nothing and fails on nothing.
        assert cli(schema_url, "db", "roles", "--prefix", prefix).returncode == 0
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{db_schema}" CASCADE')
            drop_roles(conn, prefix)


def test_ingest_service_runs_under_its_role(
    database_url: str,
    schema_url: str,
    db_schema: str,
    mqtt_url: str,
    topic_prefix: str,
    device_suffix: str,
) -> None:
    fleet = make_fleet(device_suffix)
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    with psycopg.connect(schema_url, autocommit=True) as conn:
        apply_migrations(conn)
        import_fleet(conn, fleet)
        apply_roles(conn, db_schema, prefix=prefix, passwords={"ingest": SecretStr("x")})
    role_url = make_conninfo(
        database_url, user=login_name("ingest", prefix), options=f"-csearch_path={db_schema}"
    )
    messages = valid_messages(fleet, 10, random.Random(7))
    # A dead letter too: ingest keeps rejected input (contract §1 "Rejected input").
    bad = [(f"{topic_prefix}eldercare/v1/devices/nobody-{device_suffix}/events", b"{}")]
    try:
        with running(settings_for(role_url, mqtt_url, topic_prefix)):
            pub = Publisher(mqtt_url)
            for topic, payload in wire(messages, topic_prefix) + bad:
                pub.publish(topic, payload)
            pub.wait()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with psycopg.connect(schema_url) as conn:
                    counts = row_counts(conn)
                    dead = dead_letter_counts(conn)
                if sum(counts.values()) >= len(messages) and dead:
                    break
                time.sleep(0.3)
            pub.client.loop_stop()
        assert sum(counts.values()) == len(messages), counts
        assert sum(dead.values()) == 1
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{db_schema}" CASCADE')
            drop_roles(conn, prefix)
