"""Least-privilege PostgreSQL roles for the platform's services (`eldercare db roles`).

One NOLOGIN group role per service holds exactly the table rights that service uses; a LOGIN
user per service (optional, password from the environment or a file) is a member of its group.
Services never own a table and have no CREATE on the schema, so DDL under them fails
(PostgreSQL: only an owner may ALTER or DROP a table, CREATE needs the schema privilege); the
`migrate` group is the one that may create objects, and `eldercare db migrate` runs as it (or
as the database owner). Re-run after every `db migrate`: grants are per table, so a table a
new migration creates gets its rights only then, and rights the map no longer lists are taken
back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from pydantic import SecretStr

Conn = psycopg.Connection[Any]

SERVICES = ("ingest", "alerting", "dashboard", "notify", "readonly")

_REGISTRY = ("care_centers", "elders", "families", "elder_families", "devices", "registry_version")
_SERIES = ("smoke_telemetry", "band_telemetry", "cane_telemetry", "device_events", "device_status")
_VIEWS = (
    "band_hourly",
    "cane_hourly",
    "smoke_hourly",
    "event_hourly",
    "elder_activity_hourly",
    "device_health",
)
_ALERTS = ("alerts", "alert_transitions", "alert_steps")
_NOTIFY_CONFIG = ("push_subscriptions", "notify_webhooks", "notify_prefs")
_NOTIFY_STATE = ("notify_deliveries", "notify_attempts", "notify_cursor", "notify_keys")
# Every service asks which storage mode the schema is in (ingest.migrate.recorded_mode).
_META = ("storage_settings", "schema_migrations")
_DIAGNOSTIC = ("dead_letters", "misdated_messages", "device_last_seen", "retention_settings")
# Secrets: password hashes, session tokens, MQTT hashes, VAPID private keys, webhook secrets.
_SECRET = ("users", "user_sessions", "login_attempts", "mqtt_accounts", "notify_keys")


@dataclass(frozen=True, slots=True)
class Rights:
    """What one service may do, table by table.

    Attributes:
        read: tables and views it may SELECT.
        append: tables it may INSERT into (and SELECT, for ON CONFLICT and RETURNING).
        write: tables it may SELECT, INSERT, UPDATE and DELETE.
        update: tables it may SELECT and UPDATE.
        functions: functions it may EXECUTE.
    """

    read: tuple[str, ...] = ()
    append: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()


RIGHTS: dict[str, Rights] = {
    # ingest.db: registry lookups, batched inserts, last-seen upserts, dead letters.
    "ingest": Rights(
        read=(*_REGISTRY, "retention_settings"),
        append=(*_SERIES, "dead_letters", "misdated_messages"),
        write=("device_last_seen",),
        functions=("ensure_week_partitions",),
    ),
    # alerting: detectors read the registry and series; alerts, their history and outbox.
    "alerting": Rights(
        read=(*_REGISTRY, *_SERIES, *_VIEWS, "device_last_seen", "user_elders"),
        append=("audit", "dead_letters"),
        # alerting_progress: how far live traffic was handled (alerting.late_falls).
        write=(*_ALERTS, "alerting_progress"),
        # The dispatch command line puts a centre on or off duty (alerting.dispatch_cli).
        update=("care_centers",),
    ),
    # dashboard: reads everything it shows, keeps users, sessions, links and preferences;
    # never writes device data.
    "dashboard": Rights(
        read=(*_SERIES, *_VIEWS, *_DIAGNOSTIC, "notify_attempts"),
        append=("audit",),
        # Delivery receipts from the browser (dashboard.queries.notify).
        update=("notify_deliveries",),
        write=(
            *_REGISTRY,
            *_ALERTS,
            *_NOTIFY_CONFIG,
            "users",
            "user_sessions",
            "login_attempts",
            "user_elders",
            "notify_keys",
        ),
    ),
    # notify: the outbox and its cursor; whom to tell, and how.
    "notify": Rights(
        read=(*_REGISTRY, *_ALERTS, "users", "user_elders", "notify_prefs", "notify_webhooks"),
        write=(*_NOTIFY_STATE, "push_subscriptions"),
    ),
    # Reports and operators: every table but the secrets.
    "readonly": Rights(
        read=(
            *_REGISTRY,
            *_SERIES,
            *_VIEWS,
            *_DIAGNOSTIC,
            *_ALERTS,
            "alerting_progress",
            "user_elders",
            "audit",
            "notify_deliveries",
            "notify_attempts",
            "notify_prefs",
        )
    ),
}
assert not set(RIGHTS["readonly"].read) & set(_SECRET)


def role_name(service: str, prefix: str = "eldercare_") -> str:
    """The group role of `service` (`eldercare_ingest` …, `eldercare_migrate`)."""
    return f"{prefix}{service}"


def login_name(service: str, prefix: str = "eldercare_") -> str:
    """The LOGIN user of `service`, a member of its group (`eldercare_ingest_login`)."""
    return f"{prefix}{service}_login"


def _ensure_role(conn: Conn, name: str, *, login: bool) -> None:
    found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    verb = sql.SQL("ALTER ROLE" if found else "CREATE ROLE")
    attrs = "LOGIN" if login else "NOLOGIN"
    conn.execute(
        sql.SQL("{} {} {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS").format(
            verb, sql.Identifier(name), sql.SQL(attrs)
        )
    )


def _relations(conn: Conn, schema: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm')"
        " AND NOT c.relispartition",
        (schema,),
    ).fetchall()
    return {r[0] for r in rows}


def _grant(conn: Conn, privileges: str, tables: tuple[str, ...], schema: str, role: str) -> None:
    existing = _relations(conn, schema)
    for table in tables:
        if table in existing:
            conn.execute(
                sql.SQL("GRANT {} ON {}.{} TO {}").format(
                    sql.SQL(privileges),
                    sql.Identifier(schema),
                    sql.Identifier(table),
                    sql.Identifier(role),
                )
            )


def _partition_function(conn: Conn, schema: str, role: str) -> None:
    # Plain mode creates weekly partitions at write time: the function runs with its owner's
    # rights (SECURITY DEFINER), so the writer needs no CREATE; search_path pinned against
    # object substitution (PostgreSQL docs, "Writing SECURITY DEFINER Functions Safely").
    oid = conn.execute(
        "SELECT to_regprocedure(%s)",
        (f"{schema}.ensure_week_partitions(regclass, timestamptz[])",),
    ).fetchone()
    if oid is None or oid[0] is None:
        return
    fn = sql.SQL("{}.ensure_week_partitions(regclass, timestamptz[])").format(
        sql.Identifier(schema)
    )
    conn.execute(
        sql.SQL("ALTER FUNCTION {} SECURITY DEFINER SET search_path = pg_catalog").format(fn)
    )
    conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(fn))
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(fn, sql.Identifier(role)))


def apply_roles(
    conn: Conn,
    schema: str = "public",
    *,
    prefix: str = "eldercare_",
    passwords: Mapping[str, SecretStr] | None = None,
) -> list[str]:
    """Create (or update) the group roles and grants, and LOGIN users for `passwords`.

    Args:
        conn: a connection of a role that may create roles and owns the schema's objects.
        schema: the platform's schema.
        prefix: the role names' prefix (tests use a unique one: roles are cluster-wide).
        passwords: service name -> password of its LOGIN user (none: groups only).

    Returns:
        The roles created or updated.
    """
    schema_id = sql.Identifier(schema)
    db = sql.Identifier(conn.info.dbname)
    done = []
    with conn.transaction():
        migrate = role_name("migrate", prefix)
        _ensure_role(conn, migrate, login=False)
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(schema_id))
        conn.execute(
            sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(
                schema_id, sql.Identifier(migrate)
            )
        )
        done.append(migrate)
        for service in SERVICES:
            done += _apply_service(conn, service, schema, prefix, db, passwords or {})
    return done


def _apply_service(
    conn: Conn,
    service: str,
    schema: str,
    prefix: str,
    db: sql.Identifier,
    passwords: Mapping[str, SecretStr],
) -> list[str]:
    role = role_name(service, prefix)
    rid, sid = sql.Identifier(role), sql.Identifier(schema)
    _ensure_role(conn, role, login=False)
    conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, rid))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sid, rid))
    # Start from nothing, so a right the map no longer lists is taken back.
    conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(sid, rid))
    rights = RIGHTS[service]
    _grant(conn, "SELECT", (*_META, *rights.read), schema, role)
    _grant(conn, "SELECT, INSERT", rights.append, schema, role)
    _grant(conn, "SELECT, INSERT, UPDATE, DELETE", rights.write, schema, role)
    _grant(conn, "SELECT, UPDATE", rights.update, schema, role)
    if rights.append or rights.write:
        conn.execute(
            sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(sid, rid)
        )
    if "ensure_week_partitions" in rights.functions:
        _partition_function(conn, schema, role)
    made = [role]
    secret = passwords.get(service)
    if secret is not None:
        user = login_name(service, prefix)
        _ensure_role(conn, user, login=True)
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(secret.get_secret_value())
            )
        )
        conn.execute(sql.SQL("GRANT {} TO {}").format(rid, sql.Identifier(user)))
        made.append(user)
    return made


def drop_roles(conn: Conn, prefix: str) -> None:
    """Drop every role `apply_roles` made with `prefix` (their grants first)."""
    names = [role_name(s, prefix) for s in (*SERVICES, "migrate")]
    names += [login_name(s, prefix) for s in SERVICES]
    for name in names:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def passwords_from(environ: Mapping[str, str]) -> dict[str, SecretStr]:
    """LOGIN passwords given as `ELDERCARE_DB_PASSWORD_<SERVICE>_FILE` (a file's first line,
    preferred: it stays out of the process environment) or `ELDERCARE_DB_PASSWORD_<SERVICE>`.
    """
    out: dict[str, SecretStr] = {}
    for service in SERVICES:
        key = f"ELDERCARE_DB_PASSWORD_{service.upper()}"
        if environ.get(f"{key}_FILE"):
            with open(environ[f"{key}_FILE"], encoding="utf-8") as fh:
                out[service] = SecretStr(fh.readline().strip())
        elif environ.get(key):
            out[service] = SecretStr(environ[key])
    return out
