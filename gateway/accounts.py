"""MQTT accounts in the registry and the broker files rendered from them (I/O only)."""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from gateway.acl import Account, AccountKind, render_acl, render_passwd
from gateway.credentials import (
    Credential,
    CredentialError,
    check_device_id,
    issue,
    service_username,
)

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]

# Devices deleted from the registry lose their account with them: the join drops them.
_ACTIVE_SQL = (
    "SELECT a.username, a.kind, a.subject, a.password_hash FROM mqtt_accounts AS a"
    " LEFT JOIN devices AS d ON a.kind = 'device' AND d.id = a.subject"
    " WHERE a.revoked_at IS NULL AND (a.kind <> 'device' OR d.id IS NOT NULL)"
)
_UPSERT_SQL = (
    "INSERT INTO mqtt_accounts (username, kind, subject, password_hash)"
    " VALUES (%s, %s, %s, %s) ON CONFLICT (username) DO UPDATE SET"
    " password_hash = EXCLUDED.password_hash, issued_at = now(), revoked_at = NULL"
)


def account_for(kind: AccountKind, subject: str) -> str:
    """The username of a device, service or care-centre account.

    Raises:
        CredentialError: for a malformed device id or an unknown service.
    """
    if kind is AccountKind.DEVICE:
        return check_device_id(subject)
    if kind is AccountKind.SERVICE:
        return service_username(subject)
    if kind is AccountKind.HUB:
        # A home hub's account is named after its elder (the home); `_` keeps it outside the
        # device id pattern (contract §1).
        return f"hub_{subject}"
    return f"center_{subject}"


def issue_account(conn: Conn, kind: AccountKind, subject: str) -> Credential:
    """Issue (or rotate: replace) the secret of an account; only its hash is stored.

    Raises:
        CredentialError: a device that is not registered, or a care centre that is not.
    """
    username = account_for(kind, subject)
    table = {
        AccountKind.DEVICE: "devices",
        AccountKind.CENTER: "care_centers",
        AccountKind.HUB: "elders",
    }.get(kind)
    if table is not None:
        found = conn.execute(f"SELECT 1 FROM {table} WHERE id = %s", (subject,)).fetchone()
        if found is None:
            raise CredentialError(f"{kind.value} {subject!r} is not in the registry")
    credential, hashed = issue(username)
    with conn.transaction():
        conn.execute(_UPSERT_SQL, (username, kind.value, subject, hashed))
    logger.info("issued MQTT credentials for %s", username)
    return credential


def revoke_account(conn: Conn, kind: AccountKind, subject: str) -> bool:
    """Revoke an account. Returns whether an active account was revoked."""
    username = account_for(kind, subject)
    with conn.transaction():
        cur = conn.execute(
            "UPDATE mqtt_accounts SET revoked_at = now() WHERE username = %s"
            " AND revoked_at IS NULL",
            (username,),
        )
    logger.info("revoked MQTT credentials for %s", username)
    return cur.rowcount > 0


def active_accounts(conn: Conn) -> list[Account]:
    """Every account the broker should accept right now."""
    rows = conn.execute(_ACTIVE_SQL).fetchall()
    homes: dict[str, list[str]] = {}
    if any(k == AccountKind.HUB.value for _, k, _, _ in rows):
        for device_id, elder_id in conn.execute("SELECT id, elder_id FROM devices ORDER BY id"):
            homes.setdefault(elder_id, []).append(device_id)
    return [
        Account(u, AccountKind(k), s, h, tuple(homes.get(s, ())) if k == "hub" else ())
        for u, k, s, h in rows
    ]


def write_atomically(path: Path, text: str, mode: int = 0o600) -> bool:
    """Replace `path` with `text` by renaming over it, unless it already holds it.

    Returns:
        Whether the file changed.
    """
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync did."""

    accounts: int
    changed: bool
    signalled: bool


def reload_broker(pid_file: Path) -> bool:
    """Send SIGHUP to the broker whose pid is in `pid_file`; False if it is not running."""
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        logger.warning("no running broker found from %s", pid_file)
        return False
    return True


def sync_files(conn: Conn, out_dir: Path, prefix: str = "") -> SyncResult:
    """Render `passwd` and `acl` into `out_dir`; SIGHUP the broker there when they changed."""
    accounts = active_accounts(conn)
    out_dir.mkdir(parents=True, exist_ok=True)
    changed = write_atomically(out_dir / "passwd", render_passwd(accounts))
    changed |= write_atomically(out_dir / "acl", render_acl(accounts, prefix))
    signalled = False
    pid_file = out_dir / "mosquitto.pid"
    if changed and pid_file.exists():
        signalled = reload_broker(pid_file)
    return SyncResult(len(accounts), changed, signalled)
