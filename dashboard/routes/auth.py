"""Sign-in, sign-out (with handover of held alerts) and the current user."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from dashboard.accounts import new_token, token_hash, verify_password
from dashboard.deps import (
    SESSION_COOKIE,
    ActingUser,
    Conn,
    CurrentUser,
    NowMs,
    Settings,
    client_ip,
)
from dashboard.errors import ErrorOut, errors
from dashboard.models import HeldOut, LoginIn, LogoutIn, SessionOut, UserOut
from dashboard.queries import alerts as alerts_q
from dashboard.queries import users as users_q

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=SessionOut,
    responses={
        **errors(401, 422, s401="Wrong username or password"),
        429: {"model": ErrorOut, "description": "Too many failed logins from this address"},
    },
)
def login(
    body: LoginIn, request: Request, response: Response, conn: Conn, settings: Settings, now: NowMs
) -> SessionOut:
    """Start a session: sets the `eldercare_session` cookie and returns the CSRF token."""
    ip = client_ip(request)
    since = now - settings.login_window_s * 1000
    if users_q.recent_failures(conn, body.username, ip, since) >= settings.login_max_failures:
        raise HTTPException(429, "too many failed logins; try again later")
    creds = users_q.credentials(conn, body.username)
    ok = verify_password(creds[0] if creds else None, body.password) and not (creds and creds[1])
    token, csrf = new_token(), new_token()
    with conn.transaction():
        users_q.record_attempt(conn, body.username, ip, now, ok)
        user = None
        if ok:
            expires = now + settings.session_ttl_s * 1000
            user = users_q.create_session(
                conn, body.username, token_hash(token), csrf, now, expires
            )
        users_q.audit(
            conn, user, "login" if user else "login_failed", now, ip=ip, username=body.username
        )
    if user is None:
        raise HTTPException(401, "wrong username or password")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_ttl_s,
        path="/",
        secure=not settings.insecure_cookies,
        httponly=True,
        samesite="strict",
    )
    return SessionOut(user=UserOut.of(user), csrf_token=csrf)


@router.get("/me", response_model=SessionOut, responses=errors(401))
def me(user: CurrentUser) -> SessionOut:
    """The signed-in user and the session's CSRF token."""
    return SessionOut(user=UserOut.of(user), csrf_token=user.csrf_token)


@router.post(
    "/logout",
    status_code=204,
    responses={
        **errors(401, 403, 422, s422="Invalid body, or the handover target cannot take them"),
        409: {"model": HeldOut, "description": "Holding taken alerts: hand them over first"},
    },
)
def logout(body: LogoutIn, request: Request, user: ActingUser, conn: Conn, now: NowMs) -> Response:
    """End the session; alerts this user holds must be handed over to another dispatcher."""
    held = alerts_q.held_alerts(conn, user.username)
    with conn.transaction():
        if held:
            if not body.handover_to:
                return JSONResponse(
                    {"detail": "hand over the alerts you hold", "held": [a for a, _ in held]},
                    status_code=409,
                )
            target = users_q.get_user(conn, body.handover_to)
            if (
                target is None
                or target.username == user.username
                or not _enabled(conn, target.username)
                or not all(target.acts_for(center) for _, center in held)
            ):
                raise HTTPException(422, "handover_to cannot take these alerts")
            alerts_q.hand_over(conn, [a for a, _ in held], user, target.username, now)
            users_q.audit(
                conn,
                user,
                "handover",
                now,
                target=target.username,
                detail={"alerts": [a for a, _ in held]},
                ip=client_ip(request),
            )
        users_q.end_session(conn, user.session_hash)
        users_q.audit(conn, user, "logout", now, ip=client_ip(request))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _enabled(conn: Conn, username: str) -> bool:
    creds = users_q.credentials(conn, username)
    return creds is not None and not creds[1]
