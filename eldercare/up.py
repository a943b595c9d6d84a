"""`eldercare up`: the whole platform in one process, driving a simulated district."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from alerting.notify.service import Notifier
from alerting.notify.settings import NotifySettings
from alerting.service import AlertingService
from alerting.settings import AlertingSettings
from eldercare import stack
from eldercare.broker import (
    SERVICES_OF_UP,
    BrokerUnavailable,
    ensure_broker,
    keep_in_sync,
    logins_from_dir,
    start_secured_broker,
)
from firmware_sim import Simulation, generate_fleet
from gateway import Fleet, fleet_to_dict, parse_fleet
from ingest import pg
from ingest.db import connect
from ingest.metrics import IngestMetrics
from ingest.migrate import apply_migrations, recorded_mode
from ingest.registry import import_fleet
from ingest.service import IngestService
from ingest.settings import IngestSettings

logger = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register `up`."""
    p = sub.add_parser(
        "up",
        help="run broker, ingest, alerting and a simulated district in one process",
        description=(
            "Start the whole platform on one machine: an MQTT 5 broker ($MQTT_URL, else the "
            "local Mosquitto, else one started here), the database schema ($DATABASE_URL), "
            "ingest, alerting, and a simulated district driving it. Prints live counts until "
            "Ctrl-C. Exits non-zero, and stops everything it started, when there is no MQTT 5 "
            "broker or database, or a service is not ready in time or stops while running."
        ),
    )
    p.add_argument("--elders", type=int, default=1000, help="district size (default 1000)")
    p.add_argument("--fleet", type=Path, help="use this fleet file instead of generating one")
    p.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    p.add_argument("--speed", type=float, default=1.0, help="time acceleration (default 1)")
    p.add_argument("--duration", type=float, help="stop after this many real seconds")
    p.add_argument("--prefix", default="", help="topic prefix (default none)")
    p.add_argument(
        "--own-broker",
        action="store_true",
        help="start a Mosquitto here with auth on even when one already runs locally",
    )
    p.add_argument(
        "--rate-scale",
        type=float,
        default=20.0,
        help="multiply spontaneous incident rates so a demo shows some (default 20)",
    )
    p.add_argument("--every", type=float, default=5.0, help="seconds between status lines")
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        help="seconds each service may take to become ready before up gives up (default 60)",
    )
    stack.add_arguments(p)
    p.set_defaults(handler=partial(stack.run, inner=run_up))


def _fleet(args: argparse.Namespace) -> Fleet:
    if args.fleet is not None:
        return parse_fleet(args.fleet.read_bytes())
    fleet = generate_fleet(args.elders, seed=args.seed)
    path = Path(tempfile.gettempdir()) / f"eldercare-fleet-{args.elders}-{args.seed}.json"
    path.write_text(json.dumps(fleet_to_dict(fleet)), encoding="utf-8")
    logger.info("fleet file written to %s", path)
    return fleet


def _prepare_database(url: str, fleet: Fleet) -> str:
    # Migrations may rewrite a large table: no statement timeout (keepalives still apply).
    with connect(url, statement_timeout_ms=0) as conn:
        applied = apply_migrations(conn)
        mode = recorded_mode(conn)
        result = import_fleet(conn, fleet)
    logger.info(
        "database ready (%s mode, %d migration(s) applied); registry: %s",
        mode,
        len(applied),
        result,
    )
    return str(mode)


def _total(metrics: IngestMetrics, name: str) -> float:
    """Sum of a labelled counter over all its labels."""
    return sum(
        sample.value
        for metric in metrics.registry.collect()
        if metric.name == name
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def _status_line(sim: Simulation, metrics: IngestMetrics, conn: psycopg.Connection[Any]) -> str:
    stored, dead = _total(metrics, "ingest_stored"), _total(metrics, "ingest_dead_letters")
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE status IN ('open', 'acknowledged', 'escalated')),"
        " count(*) FROM alerts"
    ).fetchone()
    active, total = row if row else (0, 0)
    st = sim.stats
    return (
        f"devices online {st.online}/{st.devices} | {st.rate_msg_s:.0f} msg/s | "
        f"stored {stored:.0f} | dead letters {dead:.0f} | alerts active {active}, total {total} | "
        f"incidents simulated {st.incidents}"
    )


class _Services:
    """The service threads `up` started: each one's fatal error, if it stopped by one."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.threads: dict[str, threading.Thread] = {}
        self.errors: dict[str, BaseException] = {}

    def start(self, name: str, run: Callable[[threading.Event], None]) -> None:
        def target() -> None:
            try:
                run(self.stop)
            except BaseException as exc:
                logger.exception("%s stopped by an error", name)
                self.errors[name] = exc

        thread = threading.Thread(target=target, name=name, daemon=True)
        self.threads[name] = thread
        thread.start()

    def dead(self) -> str | None:
        """Why a service is no longer running although nothing asked it to stop, or None."""
        if self.stop.is_set():
            return None
        for name, thread in self.threads.items():
            if not thread.is_alive():
                error = self.errors.get(name)
                why = f"{type(error).__name__}: {error}" if error else "it returned"
                return f"{name} stopped while running ({why})"
        return None

    def wait_ready(
        self, checks: dict[str, Callable[[float], bool]], timeout_s: float
    ) -> str | None:
        """Wait until every service is ready; the reason when one dies or times out first."""
        deadline = time.monotonic() + timeout_s
        for name, ready in checks.items():
            while not ready(max(0.0, min(0.5, deadline - time.monotonic()))):
                dead = self.dead()
                if dead is not None:
                    return dead
                if time.monotonic() >= deadline:
                    return f"{name} did not become ready within {timeout_s:g} s"
        return None

    def join(self, timeout_s: float) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self.threads.values():
            thread.join(max(0.1, deadline - time.monotonic()))


def _fail(reason: str) -> int:
    print(f"eldercare up: {reason}; stopping", file=sys.stderr, flush=True)
    return 1


def _safe_status_line(
    sim: Simulation, metrics: IngestMetrics, conn: psycopg.Connection[Any]
) -> str:
    try:
        return _status_line(sim, metrics, conn)
    except psycopg.Error as exc:
        logger.warning("status line unavailable: %s", exc)
        return f"devices online {sim.stats.online}/{sim.stats.devices} | database: {exc}"


def run_up(args: argparse.Namespace) -> int:
    """Run the platform until Ctrl-C or `--duration`.

    Returns:
        0 after a clean stop; 2 when the broker or the database is missing; 1 when a service
        does not become ready within `--ready-timeout` or stops while running. Everything
        started here is stopped before returning.
    """
    secure, broker = bool(args.own_broker), ""
    try:
        if not secure:
            broker = ensure_broker(allow_mosquitto=False)
    except BrokerUnavailable as exc:
        # No broker to join: one started here runs with auth on (anonymous access off).
        secure = not os.environ.get("MQTT_URL") and shutil.which("mosquitto") is not None
        if not secure:
            print(f"eldercare up: {exc}", file=sys.stderr)
            return 2
    # Under a prefix the service sessions get their own client ids, so two platforms can share
    # one broker (MQTT 3.1.3.1: a second connection with the same id takes the session over).
    # One consumer of each kind runs here, so plain subscriptions: Mosquitto 2.0 does not restore
    # shared ones after a broker restart, and a plain one loses nothing (ingest.mqtt).
    ingest_settings = IngestSettings(mqtt_url=broker, topic_prefix=args.prefix, share_group="")
    if args.prefix:
        ingest_settings.client_id = f"{args.prefix}{ingest_settings.client_id}"
    db_url = ingest_settings.database_url
    try:
        fleet = _fleet(args)
        mode = _prepare_database(db_url, fleet)
    except psycopg.OperationalError as exc:
        print(
            f"eldercare up: cannot reach the database at {db_url}: {exc}\n"
            "Start PostgreSQL or TimescaleDB (docker compose up -d timescaledb) or set "
            "DATABASE_URL.",
            file=sys.stderr,
        )
        return 2
    logins = {name: broker for name in SERVICES_OF_UP}
    creds_dir = os.environ.get("MQTT_CREDENTIALS_DIR")
    if creds_dir and not secure:
        logins = logins_from_dir(broker, Path(creds_dir), SERVICES_OF_UP)
        ingest_settings.mqtt_url = logins["ingest"]
    services = _Services(threading.Event())
    if secure:
        secured = start_secured_broker(db_url, args.prefix)
        broker, logins = secured.url, secured.logins
        ingest_settings.mqtt_url = logins["ingest"]
        services.start("broker-sync", partial(keep_in_sync, db_url, secured, args.prefix))
    metrics = IngestMetrics()
    ingest = IngestService(ingest_settings, metrics=metrics)
    alerting_settings = AlertingSettings(
        mqtt_url=logins["alerting"], database_url=db_url, topic_prefix=args.prefix, share_group=""
    )
    if args.prefix:
        alerting_settings.client_id = f"{args.prefix}{alerting_settings.client_id}"
    alerting = AlertingService(alerting_settings)
    services.start("ingest", ingest.run)
    services.start("alerting", alerting.run)
    # Families' Web Push and webhooks; it reads the alert history, not the broker.
    services.start("notify", Notifier(NotifySettings(database_url=db_url)).run)
    try:
        not_ready = services.wait_ready(
            {"ingest": ingest.wait_subscribed, "alerting": alerting.ready.wait},
            args.ready_timeout,
        )
        if not_ready is not None:
            return _fail(not_ready)
        not_ready = stack.start_console(services, db_url, logins["dashboard"], args)
        if not_ready is not None:
            return _fail(not_ready)
        return _drive(args, (broker, logins["simulator"]), mode, fleet, metrics, services, db_url)
    finally:
        services.join(30)


def _drive(
    args: argparse.Namespace,
    broker_login: tuple[str, str],
    mode: str,
    fleet: Fleet,
    metrics: IngestMetrics,
    services: _Services,
    db_url: str,
) -> int:
    broker, login = broker_login  # the address to print; the simulator's login
    sim = Simulation(
        fleet,
        mqtt_url=login,
        prefix=args.prefix,
        seed=args.seed,
        speed=args.speed,
        duration_s=args.duration,
        rate_scale=args.rate_scale,
    )
    print(
        f"eldercare up: broker {broker}, database {mode}, {len(fleet.elders)} elders, "
        f"{len(fleet.devices)} devices, {len(fleet.care_centers)} care centres. "
        f"Alerts are published on {args.prefix}eldercare/v1/alerts/+; Ctrl-C stops.",
        file=sys.stderr,
        flush=True,
    )
    sim_thread = sim.start()
    failure: str | None = None
    try:
        with pg.connect(db_url, autocommit=True, application_name="eldercare-up") as status_conn:
            next_line = time.monotonic() + args.every
            while sim_thread.is_alive():
                sim_thread.join(0.5)
                failure = services.dead()
                if failure is not None:
                    break
                if time.monotonic() >= next_line:
                    next_line += args.every
                    print(_safe_status_line(sim, metrics, status_conn), file=sys.stderr, flush=True)
            else:
                print(_safe_status_line(sim, metrics, status_conn), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("stopping...", file=sys.stderr)
    finally:
        sim.stop()
        sim_thread.join(30)
        if failure is None:
            time.sleep(1.0)  # let the last QoS 1 messages reach ingest before it flushes
    return 0 if failure is None else _fail(failure)
