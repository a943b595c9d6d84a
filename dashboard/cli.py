"""Subcommands contributed by `dashboard`: the console server and account administration."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

import psycopg

from dashboard.accounts import Role, check_username, hash_password
from dashboard.queries import users as users_q
from dashboard.settings import DashboardSettings
from ingest.migrate import apply_migrations
from ingest.pg import connect

# Who the audit trail names for changes made from the command line.
CLI_ACTOR = "cli"


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register `dashboard` and `user`."""
    run = sub.add_parser("dashboard", help="serve the dispatcher console (web app and API)")
    run.add_argument("--host", default=None, help="listen address (default $DASHBOARD_HOST)")
    run.add_argument("--port", type=int, default=None, help="port (default $DASHBOARD_PORT)")
    run.add_argument("--prefix", default=None, help="topic prefix of the alert feed")
    run.set_defaults(handler=_serve)

    user = sub.add_parser("user", help="console accounts: add, list, disable, enable, passwd")
    ops = user.add_subparsers(dest="user_command", required=True, metavar="OP")
    add = ops.add_parser("add", help="create an account")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--center", default=None, help="care centre of a dispatcher")
    add.add_argument("--elder", action="append", default=[], help="elder of a family account")
    add.add_argument("--display-name", default="")
    add.add_argument("--language", choices=["zh-CN", "en"], default="zh-CN")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(handler=_add)
    listing = ops.add_parser("list", help="list accounts")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)
    for name, flag, text in (
        ("disable", True, "disable an account and end its sessions"),
        ("enable", False, "enable a disabled account"),
    ):
        op = ops.add_parser(name, help=text)
        op.add_argument("username")
        op.set_defaults(handler=_set_disabled, disabled=flag)
    passwd = ops.add_parser("passwd", help="set a new password (ends the account's sessions)")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(handler=_passwd)


def _serve(args: argparse.Namespace) -> int:
    from dashboard.server import serve

    updates = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("topic_prefix", args.prefix))
        if v is not None
    }
    serve(DashboardSettings().model_copy(update=updates))
    return 0


def _connect() -> psycopg.Connection[Any]:
    url = DashboardSettings().database_url
    with connect(url, autocommit=True) as conn:
        apply_migrations(conn)
    return connect(url)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the passwords differ")
    return first


def _missing(conn: psycopg.Connection[Any], table: str, ids: list[str]) -> list[str]:
    rows = conn.execute(f"SELECT id FROM {table} WHERE id = ANY(%s)", (ids,)).fetchall()
    return sorted(set(ids) - {r[0] for r in rows})


def _add(args: argparse.Namespace) -> int:
    role = Role(args.role)
    try:
        name = check_username(args.username)
        if role is Role.DISPATCHER and not args.center:
            raise ValueError("a dispatcher needs --center")
        if role is Role.FAMILY and not args.elder:
            raise ValueError("a family account needs at least one --elder")
        pw_hash = hash_password(_password(args.password_stdin))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    now = int(time.time() * 1000)
    with _connect() as conn:
        missing = _missing(conn, "care_centers", [args.center] if args.center else [])
        missing += _missing(conn, "elders", args.elder)
        if missing:
            print(f"error: unknown centre or elder: {', '.join(missing)}", file=sys.stderr)
            return 2
        try:
            user = users_q.add_user(
                conn,
                name,
                role,
                pw_hash,
                now,
                center_id=args.center if role is Role.DISPATCHER else None,
                elder_ids=args.elder if role is Role.FAMILY else (),
                display_name=args.display_name,
                language=args.language,
            )
        except psycopg.errors.UniqueViolation:
            print(f"error: user {name} exists", file=sys.stderr)
            return 1
        users_q.audit(
            conn,
            None,
            "user_add",
            now,
            target=name,
            username=CLI_ACTOR,
            detail={
                "role": role.value,
                "center_id": user.center_id,
                "elder_ids": list(user.elder_ids),
            },
        )
        conn.commit()
    print(f"added {role.value} {name}")
    return 0


def _list(args: argparse.Namespace) -> int:
    with _connect() as conn:
        rows = users_q.list_users(conn)
    for user, disabled in rows:
        item = {
            "username": user.username,
            "display_name": user.display_name,
            "role": user.role.value,
            "center_id": user.center_id,
            "elder_ids": list(user.elder_ids),
            "language": user.language,
            "disabled": disabled,
        }
        if args.json:
            print(json.dumps(item, ensure_ascii=False))
        else:
            where = user.center_id or ",".join(user.elder_ids) or "-"
            state = "disabled" if disabled else "active"
            print(f"{user.username:<24} {user.role.value:<10} {where:<24} {state}")
    return 0


def _set_disabled(args: argparse.Namespace) -> int:
    now = int(time.time() * 1000)
    with _connect() as conn:
        if not users_q.set_disabled(conn, args.username, args.disabled):
            print(f"error: no user {args.username}", file=sys.stderr)
            return 1
        action = "user_disable" if args.disabled else "user_enable"
        users_q.audit(conn, None, action, now, target=args.username, username=CLI_ACTOR)
        conn.commit()
    print(f"{'disabled' if args.disabled else 'enabled'} {args.username}")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    try:
        pw_hash = hash_password(_password(args.password_stdin))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    now = int(time.time() * 1000)
    with _connect() as conn:
        if not users_q.set_password(conn, args.username, pw_hash):
            print(f"error: no user {args.username}", file=sys.stderr)
            return 1
        users_q.audit(conn, None, "user_passwd", now, target=args.username, username=CLI_ACTOR)
        conn.commit()
    print(f"password of {args.username} changed")
    return 0
