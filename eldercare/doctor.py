"""`eldercare doctor`: checks a deployment and says what is wrong and how to fix it.

Each check is a function returning `Finding`s; the command prints them and exits 1 when any
is a fault. Checks: the database (reachable, migrated, storage mode, TimescaleDB jobs), the
broker (reachable with the platform's login, MQTT 5, anonymous access refused), every health
URL given, and the clock against the database server's.
"""

from __future__ import annotations

import argparse
import os
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from eldercare.broker import mqtt5_refusal
from gateway.mqtt import DEFAULT_MQTT_URL
from ingest.migrate import available_migrations, recorded_mode
from ingest.settings import DEFAULT_DATABASE_URL

# Device times are corrected against platform time and alert latency is measured across
# hosts; 2 s is the drift NTP keeps far below (RFC 5905: tens of ms on a LAN).
CLOCK_SKEW_LIMIT_S = 2.0


@dataclass(frozen=True, slots=True)
class Finding:
    """One result: `ok` False is a fault; `fix` says what to do about it."""

    check: str
    ok: bool
    detail: str
    fix: str = ""


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def check_database(url: str) -> list[Finding]:
    """Reachable, migrated, which mode, and TimescaleDB background jobs that fail."""
    try:
        conn = psycopg.connect(url, connect_timeout=5, autocommit=True)
    except psycopg.Error as exc:
        return [
            Finding(
                "database",
                False,
                f"cannot connect to {_redact(url)}: {str(exc).strip()}",
                "start PostgreSQL/TimescaleDB (docker compose up -d timescaledb) or set "
                "DATABASE_URL to a reachable server",
            )
        ]
    with conn:
        out = [Finding("database", True, f"reachable at {_redact(url)}")]
        mode = recorded_mode(conn)
        if mode is None:
            return [*out, Finding("schema", False, "not migrated", "run: eldercare db migrate")]
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        missing = sorted({m.version for m in available_migrations()} - done)
        if missing:
            out.append(
                Finding(
                    "schema",
                    False,
                    f"{len(missing)} migration(s) pending: {', '.join(missing)}",
                    "run: eldercare db migrate",
                )
            )
        else:
            out.append(Finding("schema", True, f"up to date ({mode.value} mode)"))
        return out + _timescale_jobs(conn)


def _timescale_jobs(conn: psycopg.Connection[Any]) -> list[Finding]:
    has = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if has is None:
        return []
    rows = conn.execute(
        "SELECT job_id, last_run_status, total_failures"
        " FROM timescaledb_information.job_stats WHERE last_run_status = 'Failed'"
    ).fetchall()
    if not rows:
        return [Finding("timescaledb jobs", True, "no failed background job")]
    ids = ", ".join(str(r[0]) for r in rows)
    return [
        Finding(
            "timescaledb jobs",
            False,
            f"background job(s) {ids} failed on their last run",
            "see timescaledb_information.job_errors; run them by hand with CALL run_job(id)",
        )
    ]


def check_broker(url: str) -> list[Finding]:
    """The platform's login is accepted over MQTT 5, and an anonymous one is refused."""
    refusal = mqtt5_refusal(url)
    if refusal is not None:
        if "reason code 0x86" in refusal or "reason code 0x87" in refusal:
            fix = (
                "the broker refused the platform's login: bad user name or password; issue "
                "new ones with `eldercare gateway creds rotate NAME --service` and set "
                "MQTT_USERNAME/MQTT_PASSWORD_FILE"
            )
        elif "does not answer" in refusal:
            fix = "start the broker (docker compose up -d mosquitto) or set MQTT_URL"
        else:
            fix = "run Mosquitto 2 or another MQTT 5 broker and point MQTT_URL at it"
        return [Finding("broker", False, refusal, fix)]
    out = [Finding("broker", True, f"{_redact(url)} accepts the platform's MQTT 5 login")]
    parts = urlsplit(url)
    anonymous = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or 1883}"))
    env = {
        k: os.environ.pop(k)
        for k in ("MQTT_USERNAME", "MQTT_PASSWORD", "MQTT_PASSWORD_FILE")
        if k in os.environ
    }
    try:
        open_door = mqtt5_refusal(anonymous) is None
    finally:
        os.environ.update(env)
    if open_door:
        out.append(
            Finding(
                "broker acl",
                False,
                "the broker accepts anonymous clients: any device can publish as any other",
                "generate the auth configuration: eldercare gateway broker-config --out DIR",
            )
        )
    else:
        out.append(Finding("broker acl", True, "anonymous clients are refused"))
    return out


def check_health(urls: list[str]) -> list[Finding]:
    """Each service's health endpoint answers 200."""
    out = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                out.append(Finding("health", resp.status == 200, f"{url}: HTTP {resp.status}"))
        except OSError as exc:
            out.append(Finding("health", False, f"{url}: {exc}", "see that service's log"))
    return out


def check_clock(url: str) -> list[Finding]:
    """This host's clock against the database server's."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            before = time.time()
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
            after = time.time()
    except psycopg.Error:
        return []  # the database check names that fault
    assert row is not None
    skew_s = float(row[0]) - (before + after) / 2
    ok = abs(skew_s) <= CLOCK_SKEW_LIMIT_S
    fix = "" if ok else "enable NTP on both hosts (timedatectl set-ntp true; chrony)"
    return [Finding("clock", ok, f"{skew_s:+.3f} s against the database server", fix)]


CHECKS = ("database", "broker", "health", "clock")


def run_checks(args: argparse.Namespace) -> list[Finding]:
    """Every selected check, in order."""
    db_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    mqtt_url = os.environ.get("MQTT_URL", DEFAULT_MQTT_URL)
    table: dict[str, Callable[[], list[Finding]]] = {
        "database": lambda: check_database(db_url),
        "broker": lambda: check_broker(mqtt_url),
        "health": lambda: check_health(list(args.health or [])),
        "clock": lambda: check_clock(db_url),
    }
    chosen = args.only or list(CHECKS)
    return [f for name in CHECKS if name in chosen for f in table[name]()]


def _run(args: argparse.Namespace) -> int:
    findings = run_checks(args)
    for f in findings:
        if args.quiet and f.ok:
            continue
        print(f"{'ok  ' if f.ok else 'FAIL'} {f.check}: {f.detail}")
        if f.fix:
            print(f"     fix: {f.fix}")
    return 0 if all(f.ok for f in findings) else 1


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register `doctor`."""
    p = sub.add_parser(
        "doctor",
        help="check a deployment and say what is wrong and how to fix it",
        description=(
            "Checks $DATABASE_URL (reachable, migrated, TimescaleDB jobs), $MQTT_URL with the "
            "platform's login (MQTT 5, anonymous refused), health URLs and the clock. "
            "Exits 1 when something is wrong."
        ),
    )
    p.add_argument("--only", action="append", choices=CHECKS, help="run only this check")
    p.add_argument("--health", action="append", metavar="URL", help="a health URL to query")
    p.add_argument("--quiet", action="store_true", help="print only what is wrong")
    p.set_defaults(handler=_run)
