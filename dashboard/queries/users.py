"""SQL of accounts, sessions, login attempts and the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dashboard.accounts import Role, User

Conn = psycopg.Connection[Any]

_USER_COLS = (
    "u.id, u.username, u.display_name, u.role, u.center_id,"
    " coalesce((SELECT array_agg(ue.elder_id ORDER BY ue.elder_id) FROM user_elders AS ue"
    " WHERE ue.user_id = u.id), '{}'), u.language"
)


def _user(row: Sequence[Any], csrf: str = "", session_hash: bytes = b"") -> User:
    return User(
        id=int(row[0]),
        username=row[1],
        display_name=row[2],
        role=Role(row[3]),
        center_id=row[4],
        elder_ids=tuple(row[5]),
        language=row[6],
        csrf_token=csrf,
        session_hash=session_hash,
    )


def add_user(
    conn: Conn,
    username: str,
    role: Role,
    password_hash: str,
    now_ms: int,
    *,
    center_id: str | None = None,
    elder_ids: Sequence[str] = (),
    display_name: str = "",
    language: str = "zh-CN",
) -> User:
    """Create an account (in the caller's transaction).

    Raises:
        psycopg.errors.UniqueViolation: the username exists.
    """
    row = conn.execute(
        "INSERT INTO users (username, display_name, role, center_id, language, password_hash,"
        " created_ts) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (username, display_name, role.value, center_id, language, password_hash, now_ms),
    ).fetchone()
    assert row is not None
    uid = int(row[0])
    if elder_ids:
        conn.execute(
            "INSERT INTO user_elders (user_id, elder_id) SELECT %s, unnest(%s::text[])"
            " ON CONFLICT DO NOTHING",
            (uid, list(elder_ids)),
        )
    user = get_user(conn, username)
    assert user is not None
    return user


def get_user(conn: Conn, username: str) -> User | None:
    """An account by username (disabled ones too)."""
    row = conn.execute(
        f"SELECT {_USER_COLS} FROM users AS u WHERE u.username = %s", (username,)
    ).fetchone()
    return _user(row) if row else None


def list_users(conn: Conn) -> list[tuple[User, bool]]:
    """Every account with its disabled flag, by username."""
    rows = conn.execute(
        f"SELECT {_USER_COLS}, u.disabled FROM users AS u ORDER BY u.username"
    ).fetchall()
    return [(_user(r), bool(r[7])) for r in rows]


def credentials(conn: Conn, username: str) -> tuple[str, bool] | None:
    """(password hash, disabled) of `username`, or None."""
    row = conn.execute(
        "SELECT password_hash, disabled FROM users WHERE username = %s", (username,)
    ).fetchone()
    return (row[0], bool(row[1])) if row else None


def set_disabled(conn: Conn, username: str, disabled: bool) -> bool:
    """Disable (and sign out) or re-enable an account; False when it does not exist."""
    row = conn.execute(
        "UPDATE users SET disabled = %s WHERE username = %s RETURNING id", (disabled, username)
    ).fetchone()
    if row is not None and disabled:
        conn.execute("DELETE FROM user_sessions WHERE user_id = %s", (row[0],))
    return row is not None


def set_password(conn: Conn, username: str, password_hash: str) -> bool:
    """Replace a password and end the account's sessions; False when it does not exist."""
    row = conn.execute(
        "UPDATE users SET password_hash = %s WHERE username = %s RETURNING id",
        (password_hash, username),
    ).fetchone()
    if row is not None:
        conn.execute("DELETE FROM user_sessions WHERE user_id = %s", (row[0],))
    return row is not None


def recent_failures(conn: Conn, username: str, ip: str, since_ms: int) -> int:
    """Failed logins of `username` from `ip` since `since_ms`."""
    row = conn.execute(
        "SELECT count(*) FROM login_attempts WHERE username = %s AND ip = %s AND at_ts >= %s"
        " AND NOT ok",
        (username, ip, since_ms),
    ).fetchone()
    return int(row[0]) if row else 0


def record_attempt(conn: Conn, username: str, ip: str, now_ms: int, ok: bool) -> None:
    """Store one login attempt; a success clears the failures of that username and IP."""
    if ok:
        conn.execute(
            "DELETE FROM login_attempts WHERE username = %s AND ip = %s AND NOT ok",
            (username, ip),
        )
    # Rows older than a day lie outside any throttling window (minutes): they go.
    conn.execute(
        "DELETE FROM login_attempts WHERE username = %s AND ip = %s AND at_ts < %s",
        (username, ip, now_ms - 86_400_000),
    )
    conn.execute(
        "INSERT INTO login_attempts (username, ip, at_ts, ok) VALUES (%s, %s, %s, %s)",
        (username, ip, now_ms, ok),
    )


def create_session(
    conn: Conn, username: str, token_hash: bytes, csrf: str, now_ms: int, expires_ms: int
) -> User | None:
    """Start a session for an enabled account; returns the user, or None."""
    user = get_user(conn, username)
    if user is None:
        return None
    conn.execute(
        "DELETE FROM user_sessions WHERE user_id = %s AND expires_ts <= %s", (user.id, now_ms)
    )
    conn.execute(
        "INSERT INTO user_sessions (token_hash, user_id, csrf_token, created_ts, last_seen_ts,"
        " expires_ts) VALUES (%s, %s, %s, %s, %s, %s)",
        (token_hash, user.id, csrf, now_ms, now_ms, expires_ms),
    )
    return _user(
        (
            user.id,
            user.username,
            user.display_name,
            user.role.value,
            user.center_id,
            list(user.elder_ids),
            user.language,
        ),
        csrf,
        token_hash,
    )


def session_user(conn: Conn, token_hash: bytes, now_ms: int, idle_ms: int) -> User | None:
    """The user of a live session (not expired, not idle too long, account enabled).

    Touches `last_seen_ts` at most once a minute, so reads stay cheap.
    """
    row = conn.execute(
        f"SELECT {_USER_COLS}, s.csrf_token, s.last_seen_ts FROM user_sessions AS s"
        " JOIN users AS u ON u.id = s.user_id"
        " WHERE s.token_hash = %s AND s.expires_ts > %s AND s.last_seen_ts > %s"
        " AND NOT u.disabled",
        (token_hash, now_ms, now_ms - idle_ms),
    ).fetchone()
    if row is None:
        return None
    if now_ms - int(row[8]) > 60_000:
        conn.execute(
            "UPDATE user_sessions SET last_seen_ts = %s WHERE token_hash = %s",
            (now_ms, token_hash),
        )
    return _user(row[:7], row[7], token_hash)


def end_session(conn: Conn, token_hash: bytes) -> None:
    """Delete one session."""
    conn.execute("DELETE FROM user_sessions WHERE token_hash = %s", (token_hash,))


def audit(
    conn: Conn,
    user: User | None,
    action: str,
    now_ms: int,
    *,
    target: str = "",
    detail: dict[str, Any] | None = None,
    ip: str = "",
    username: str | None = None,
) -> None:
    """Record one action in the audit trail (in the caller's transaction)."""
    conn.execute(
        "INSERT INTO audit (at_ts, user_id, username, action, target, detail, ip)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            now_ms,
            user.id if user else None,
            user.username if user else (username or ""),
            action,
            target,
            Jsonb(detail or {}),
            ip,
        ),
    )
