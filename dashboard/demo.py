"""Demo accounts, one per role, for `eldercare up` (documented logins; never for production)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from dashboard.accounts import Role, hash_password
from dashboard.queries import users as users_q

# Printed by `eldercare up` and written in the README: a demo on a developer's machine.
DEMO_PASSWORD = "eldercare-demo"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """A demo login and what it is bound to."""

    username: str
    role: Role
    bound_to: str  # the centre of the dispatcher, the elder of the family account, or ""


def ensure_demo_accounts(conn: psycopg.Connection[Any], now_ms: int) -> list[DemoAccount]:
    """Create `admin`, `dispatcher` (first care centre) and `family` (first elder) if absent.

    Existing accounts of those names are left as they are (their password too). Committed
    here.

    Returns:
        The demo accounts that exist after the call.
    """
    center = conn.execute("SELECT id FROM care_centers ORDER BY id LIMIT 1").fetchone()
    elder = conn.execute("SELECT id FROM elders ORDER BY id LIMIT 1").fetchone()
    wanted = [DemoAccount("admin", Role.ADMIN, "")]
    if center is not None:
        wanted.append(DemoAccount("dispatcher", Role.DISPATCHER, center[0]))
    if elder is not None:
        wanted.append(DemoAccount("family", Role.FAMILY, elder[0]))
    out = []
    for acc in wanted:
        existing = users_q.get_user(conn, acc.username)
        if existing is None:
            users_q.add_user(
                conn,
                acc.username,
                acc.role,
                hash_password(DEMO_PASSWORD),
                now_ms,
                center_id=acc.bound_to if acc.role is Role.DISPATCHER else None,
                elder_ids=(acc.bound_to,) if acc.role is Role.FAMILY else (),
                display_name=f"Demo {acc.role.value}",
            )
            users_q.audit(conn, None, "user_add", now_ms, target=acc.username, username="demo")
            out.append(acc)
        else:
            bound = existing.center_id or ",".join(existing.elder_ids)
            out.append(DemoAccount(existing.username, existing.role, bound))
    conn.commit()
    return out
