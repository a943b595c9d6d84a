"""Subcommands contributed by `gateway`: `gateway creds|acl|certs|broker-config|hub`."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.accounts import issue_account, revoke_account, sync_files, write_atomically
from gateway.acl import AccountKind, TlsFiles, render_conf
from gateway.certs import Issued, make_ca, make_client_cert, make_server_cert
from gateway.credentials import CredentialError
from ingest.pg import connect

logger = logging.getLogger(__name__)


class GatewaySettings(BaseSettings):
    """Where the registry is (shared DATABASE_URL) and the deployment's topic prefix."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=AliasChoices("DATABASE_URL", "GATEWAY_DATABASE_URL"),
    )
    topic_prefix: str = ""


def _connect() -> psycopg.Connection[Any]:
    return connect(GatewaySettings().database_url, autocommit=True)


def _kind(args: argparse.Namespace) -> AccountKind:
    if args.service:
        return AccountKind.SERVICE
    if args.center:
        return AccountKind.CENTER
    if args.hub:
        return AccountKind.HUB
    return AccountKind.DEVICE


def _creds(args: argparse.Namespace) -> int:
    kind = _kind(args)
    try:
        with _connect() as conn:
            if args.action == "revoke":
                found = revoke_account(conn, kind, args.subject)
                print(f"revoked {args.subject}" if found else f"no active account {args.subject}")
                return 0 if found else 1
            credential = issue_account(conn, kind, args.subject)
    except CredentialError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(args.out, credential.to_json() + "\n")
        print(f"wrote {args.out} (mode 0600) for {credential.username}")
    elif args.json:
        print(credential.to_json())
    else:
        print(credential.qr_line(args.host, args.port))
    return 0


def _acl_sync(args: argparse.Namespace) -> int:
    prefix = args.prefix if args.prefix is not None else GatewaySettings().topic_prefix
    if args.watch is None:
        with _connect() as conn:
            result = sync_files(conn, args.dir, prefix)
        print(f"{result.accounts} accounts" + (", broker reloaded" if result.signalled else ""))
        return 0
    logger.info("watching the registry: %s every %.1f s", args.dir, args.watch)
    while True:
        try:
            with _connect() as conn:
                while True:
                    result = sync_files(conn, args.dir, prefix)
                    if result.changed:
                        logger.info(
                            "broker files: %d accounts%s",
                            result.accounts,
                            ", broker reloaded" if result.signalled else "",
                        )
                    time.sleep(args.watch)
        except psycopg.OperationalError as exc:
            # The broker keeps its last files meanwhile; retry until the database is back.
            logger.warning("registry unavailable, broker files unchanged: %s", exc)
            time.sleep(max(args.watch, 1.0))


def _write_pair(out: Path, stem: str, issued: Issued) -> None:
    write_atomically(out / f"{stem}.crt", issued.cert_pem.decode(), 0o644)
    write_atomically(out / f"{stem}.key", issued.key_pem.decode(), 0o600)


def _certs(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_crt, ca_key = out / "ca.crt", out / "ca.key"
    if ca_crt.exists() and ca_key.exists():
        ca = Issued(ca_crt.read_bytes(), ca_key.read_bytes())
    else:
        ca = make_ca(args.name, now)
        _write_pair(out, "ca", ca)
    hosts = args.host or ["localhost", "127.0.0.1"]
    _write_pair(out, "server", make_server_cert(ca, hosts, now))
    for username in args.client or []:
        _write_pair(out, f"client-{username}", make_client_cert(ca, username, now))
    print(f"wrote {out}/ca.crt (give it to devices to pin), server.crt, server.key")
    return 0


def _broker_config(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tls = None
    if args.tls_dir is not None:
        d: Path = args.tls_dir
        tls = TlsFiles(d / "ca.crt", d / "server.crt", d / "server.key", args.require_client_cert)
    conf = render_conf(
        out,
        port=args.port,
        bind=args.bind,
        tls=tls,
        tls_port=args.tls_port,
        # Started as root, Mosquitto drops to user `mosquitto`, which cannot read files that
        # only root may read; production passes --run-as and owns the directory by that user.
        run_as=args.run_as or ("root" if os.geteuid() == 0 else None),
    )
    write_atomically(out / "mosquitto.conf", conf, 0o644)
    prefix = args.prefix if args.prefix is not None else GatewaySettings().topic_prefix
    with _connect() as conn:
        result = sync_files(conn, out, prefix)
    print(f"wrote {out}/mosquitto.conf, passwd and acl ({result.accounts} accounts)")
    return 0


def _add_creds(gw: argparse._SubParsersAction[Any]) -> None:
    creds = gw.add_parser("creds", help="issue, rotate or revoke MQTT credentials")
    creds.add_argument("action", choices=["issue", "rotate", "revoke"])
    creds.add_argument("subject", help="device id (or service name / centre id)")
    who = creds.add_mutually_exclusive_group()
    who.add_argument("--service", action="store_true", help="a platform service account")
    who.add_argument("--center", action="store_true", help="a care centre's alert account")
    who.add_argument("--hub", action="store_true", help="a home hub's account (SUBJECT: elder id)")
    creds.add_argument("--json", action="store_true", help="print one line of JSON")
    creds.add_argument("--out", type=Path, help="write the JSON to this file (mode 0600)")
    creds.add_argument("--host", default="127.0.0.1", help="broker host for the QR line")
    creds.add_argument("--port", type=int, default=8883, help="broker port for the QR line")
    creds.set_defaults(handler=_creds)


def _add_broker(gw: argparse._SubParsersAction[Any]) -> None:
    acl = gw.add_parser("acl", help="broker password and ACL files from the registry")
    acl.add_argument("action", choices=["sync"])
    acl.add_argument("--dir", type=Path, required=True, help="the broker-config directory")
    acl.add_argument("--prefix", help="topic prefix (default $GATEWAY_TOPIC_PREFIX)")
    acl.add_argument("--watch", type=float, help="re-sync every this many seconds")
    acl.set_defaults(handler=_acl_sync)

    certs = gw.add_parser("certs", help="a private CA, a server and optional client certs")
    certs.add_argument("--out", type=Path, required=True)
    certs.add_argument("--host", action="append", default=None, help="server name or IP")
    certs.add_argument("--name", default="eldercare deployment CA", help="CA common name")
    certs.add_argument("--client", action="append", help="also a client cert for USERNAME")
    certs.set_defaults(handler=_certs)

    conf = gw.add_parser("broker-config", help="a complete Mosquitto configuration")
    conf.add_argument("--out", type=Path, required=True)
    conf.add_argument("--port", type=int, default=1883, help="plain listener (default 1883)")
    conf.add_argument("--bind", default="127.0.0.1", help="plain listener address")
    conf.add_argument("--tls-dir", type=Path, help="ca.crt/server.crt/server.key: TLS on")
    conf.add_argument("--tls-port", type=int, default=8883)
    conf.add_argument("--require-client-cert", action="store_true")
    conf.add_argument("--prefix", help="topic prefix (default $GATEWAY_TOPIC_PREFIX)")
    conf.add_argument("--run-as", help="user Mosquitto drops to when started as root")
    conf.set_defaults(handler=_broker_config)


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register `gateway`."""
    p = sub.add_parser("gateway", help="device identity, broker access control and TLS")
    gw = p.add_subparsers(dest="gateway_command", required=True, metavar="SUBCOMMAND")
    _add_creds(gw)
    _add_broker(gw)
    _add_hub(gw)


def _hub(args: argparse.Namespace) -> int:
    import signal

    from gateway.hub import Hub, HubSettings

    given = {
        "hub_id": args.hub_id,
        "local_url": args.local_url,
        "upstream_url": args.upstream_url,
        "queue_path": args.queue,
        "max_queue_bytes": args.max_queue_bytes,
        "local_prefix": args.local_prefix,
        "upstream_prefix": args.upstream_prefix,
        "status_interval_s": args.status_interval,
    }
    settings = HubSettings(**{k: v for k, v in given.items() if v is not None})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    Hub(settings).run(stop)
    return 0


def _add_hub(gw: argparse._SubParsersAction[Any]) -> None:
    hub = gw.add_parser("hub", help="the home hub: local devices upstream through a disk queue")
    hub.add_argument("--hub-id", help="the elder (home) it speaks for (HUB_HUB_ID)")
    hub.add_argument("--local-url", help="the home's broker (HUB_LOCAL_URL)")
    hub.add_argument("--upstream-url", help="the platform broker, no password (HUB_UPSTREAM_URL)")
    hub.add_argument("--queue", type=Path, help="the SQLite queue file (HUB_QUEUE_PATH)")
    hub.add_argument("--max-queue-bytes", type=int, help="storage bound (HUB_MAX_QUEUE_BYTES)")
    hub.add_argument("--local-prefix", help="topic prefix on the home's broker")
    hub.add_argument("--upstream-prefix", help="topic prefix on the platform broker")
    hub.add_argument("--status-interval", type=float, help="seconds between status reports")
    hub.set_defaults(handler=_hub)
