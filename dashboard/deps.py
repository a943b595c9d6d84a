"""Request dependencies: settings, a pooled connection, the signed-in user, role and CSRF checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, HTTPException, Request
from psycopg_pool import ConnectionPool

from dashboard.accounts import Role, User, same_token, token_hash
from dashboard.queries import users as users_q
from dashboard.settings import DashboardSettings

SESSION_COOKIE = "eldercare_session"
CSRF_HEADER = "X-CSRF-Token"


def get_settings(request: Request) -> DashboardSettings:
    """The app's settings."""
    settings: DashboardSettings = request.app.state.settings
    return settings


def get_pool(request: Request) -> ConnectionPool[Any]:
    """The app's connection pool."""
    pool: ConnectionPool[Any] = request.app.state.pool
    return pool


def get_conn(request: Request) -> Iterator[psycopg.Connection[Any]]:
    """One pooled connection per request, in autocommit mode (writes open a transaction)."""
    with get_pool(request).connection() as conn:
        yield conn


def now_ms(request: Request) -> int:
    """The platform clock in ms (the app's clock, replaceable in tests)."""
    clock: Callable[[], int] = request.app.state.clock
    return clock()


def client_ip(request: Request) -> str:
    """The peer address of the request (the proxy's, behind one)."""
    return request.client.host if request.client else ""


Settings = Annotated[DashboardSettings, Depends(get_settings)]
Conn = Annotated[psycopg.Connection[Any], Depends(get_conn)]
NowMs = Annotated[int, Depends(now_ms)]


def current_user(request: Request, conn: Conn, settings: Settings, now: NowMs) -> User:
    """The account of the session cookie.

    Raises:
        HTTPException: 401 without a live session.
    """
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise HTTPException(401, "not logged in")
    user = users_q.session_user(conn, token_hash(token), now, settings.session_idle_s * 1000)
    if user is None:
        raise HTTPException(401, "session expired")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: Role) -> Callable[[User], User]:
    """A dependency that admits only the given roles (403 otherwise)."""

    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(403, "not allowed for this role")
        return user

    return check


def require_csrf(request: Request, user: CurrentUser) -> User:
    """The signed-in user of a state-changing request carrying the session's CSRF token.

    The synchronizer-token pattern (OWASP CSRF prevention): the token comes with the login
    answer and must return in the `X-CSRF-Token` header, which another site cannot set.

    Raises:
        HTTPException: 403 when the header is missing or wrong.
    """
    if not same_token(user.csrf_token, request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, "CSRF token missing or wrong")
    return user


ActingUser = Annotated[User, Depends(require_csrf)]
AdminUser = Annotated[User, Depends(require_roles(Role.ADMIN))]
