"""The dispatcher console page: `/` (console), `/login`, and its bundled assets under `/static`.

Every asset ships in the package (`dashboard/static/`); nothing is fetched from another
origin, so the Content-Security-Policy allows only this origin (CSP Level 3, where `'self'`
also covers the same-origin websocket).
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from dashboard.accounts import User
from dashboard.deps import Conn, NowMs, Settings, current_user

router = APIRouter(tags=["page"], include_in_schema=False)

STATIC_ROOT = "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
}
# The page never embeds another origin and is never framed (clickjacking on take/resolve).
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Assets change with the package; revalidate rather than serve a stale console.
    "Cache-Control": "no-cache",
}


def _asset(path: str) -> Traversable:
    """A file under `dashboard/static/`, refusing anything that climbs out of it."""
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in {".", ".."} or "\\" in p or p.startswith(".") for p in parts):
        raise HTTPException(404, "not found")
    node = resources.files("dashboard").joinpath(STATIC_ROOT)
    for part in parts:
        node = node.joinpath(part)
    if not node.is_file():
        raise HTTPException(404, "not found")
    return node


def _file_response(path: str) -> Response:
    node = _asset(path)
    suffix = "." + node.name.rsplit(".", 1)[-1] if "." in node.name else ""
    media = _TYPES.get(suffix, "application/octet-stream")
    return Response(node.read_bytes(), media_type=media, headers=_HEADERS)


def optional_user(request: Request, conn: Conn, settings: Settings, now: NowMs) -> User | None:
    """The signed-in user, or None (the page redirects rather than answering 401)."""
    try:
        return current_user(request, conn, settings, now)
    except HTTPException:
        return None


MaybeUser = Annotated[User | None, Depends(optional_user)]


@router.get("/")
def console(user: MaybeUser) -> Response:
    """The dispatcher console; without a session, the login page."""
    if user is None:
        return RedirectResponse("/login", status_code=303)
    return _file_response("console.html")


@router.get("/login")
def login_page() -> Response:
    """The sign-in page (the console's own document, so the audio armed at sign-in stays)."""
    return _file_response("console.html")


@router.get("/static/{path:path}")
def static_asset(path: str) -> Response:
    """A bundled asset: script, style sheet, message catalogue or licence text."""
    return _file_response(path)
