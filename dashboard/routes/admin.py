"""Admin: dead letters with their raw bytes, registry import, accounts and the audit trail."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dashboard.accounts import Role, check_username, hash_password
from dashboard.deps import AdminUser, Conn, NowMs, client_ip, require_csrf, require_roles
from dashboard.errors import Responses, errors
from dashboard.models import UserOut
from dashboard.queries import admin as admin_q
from dashboard.queries import users as users_q
from dashboard.routes.elders import AUTH
from gateway import FleetError, parse_fleet
from ingest.registry import import_fleet

router = APIRouter(
    prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(require_roles(Role.ADMIN))]
)

FORBIDDEN: Responses = errors(403, s403="Not an admin (or, on writes, no CSRF token)")
PREVIEW_CHARS = 2_000  # of a payload's text shown next to its bytes
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")]
Limit = Annotated[int, Query(ge=1, le=500)]


class DeadLetterOut(BaseModel):
    """A rejected message; `received_ts` is the platform receive time (ms)."""

    id: int
    received_ts: int
    topic: str
    reason: str
    detail: str
    size_bytes: int


class DeadLetterDetail(DeadLetterOut):
    """A rejected message with its raw bytes (base64) and a text preview."""

    payload_b64: str
    text_preview: str


class DeadLetterPage(BaseModel):
    """Newest first; `next_cursor` is None on the last page."""

    items: list[DeadLetterOut]
    next_cursor: str | None


class ImportOut(BaseModel):
    """Rows inserted or changed per table (all zero when nothing changed)."""

    care_centers: int
    elders: int
    families: int
    elder_families: int
    devices: int
    changed: int


class ImportErrors(BaseModel):
    """A refused fleet file: nothing was applied (`detail` a list for a body that is no
    JSON object)."""

    detail: str | list[dict[str, Any]]
    errors: list[str] = Field(default_factory=list)


class UserIn(BaseModel):
    """A new account."""

    username: str = Field(min_length=2, max_length=32)
    password: str = Field(min_length=8, max_length=1024)
    role: Role
    center_id: str | None = Field(None, max_length=64)
    elder_ids: list[str] = Field(default_factory=list, max_length=100)
    display_name: str = Field("", max_length=100)
    language: str = Field("zh-CN", pattern=r"^(zh-CN|en)$")


class UserRow(UserOut):
    """An account with its disabled flag."""

    disabled: bool


class AuditOut(BaseModel):
    """One recorded action (platform ms)."""

    id: int
    at_ts: int
    username: str
    action: str
    target: str
    detail: dict[str, Any]
    ip: str


class AuditPage(BaseModel):
    """Newest first; `next_cursor` is None on the last page."""

    items: list[AuditOut]
    next_cursor: str | None


def _out(d: admin_q.DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(
        id=d.id,
        received_ts=d.received_ts,
        topic=d.topic,
        reason=d.reason,
        detail=d.detail,
        size_bytes=d.size_bytes,
    )


@router.get("/dead-letters", responses={**AUTH, **FORBIDDEN})
def dead_letters(
    conn: Conn,
    reason: Annotated[str | None, Query(max_length=32)] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> DeadLetterPage:
    """Rejected messages, newest first, optionally of one reason code."""
    rows = admin_q.list_dead_letters(
        conn, reason=reason, before_id=int(cursor) if cursor else None, limit=limit
    )
    nxt = str(rows[-1].id) if len(rows) == limit else None
    return DeadLetterPage(items=[_out(r) for r in rows], next_cursor=nxt)


@router.get(
    "/dead-letters/{letter_id}",
    responses={**AUTH, **FORBIDDEN, **errors(404, s404="Unknown dead letter")},
)
def dead_letter(letter_id: Annotated[int, Path(ge=1, le=2**62)], conn: Conn) -> DeadLetterDetail:
    """One rejected message with its raw bytes."""
    found = admin_q.get_dead_letter(conn, letter_id)
    if found is None or found.payload is None:
        raise HTTPException(404, "no such dead letter")
    return DeadLetterDetail(
        **_out(found).model_dump(),
        payload_b64=base64.b64encode(found.payload).decode("ascii"),
        text_preview=found.payload.decode("utf-8", errors="replace")[:PREVIEW_CHARS],
    )


@router.post(
    "/registry",
    dependencies=[Depends(require_csrf)],
    responses={
        **AUTH,
        **FORBIDDEN,
        422: {"model": ImportErrors, "description": "Refused whole, every error listed"},
    },
)
def import_registry(
    fleet_doc: Annotated[dict[str, Any], Body(description="A fleet file (contract §3)")],
    request: Request,
    conn: Conn,
    user: AdminUser,
    now: NowMs,
) -> Any:
    """Import a fleet file: validated whole, applied in one transaction, idempotent."""
    try:
        fleet = parse_fleet(fleet_doc)
    except FleetError as exc:
        body = ImportErrors(detail=f"{len(exc.errors)} error(s) in fleet file", errors=exc.errors)
        return JSONResponse(body.model_dump(), status_code=422)
    result = import_fleet(conn, fleet)
    counts = {
        "care_centers": result.care_centers,
        "elders": result.elders,
        "families": result.families,
        "elder_families": result.elder_families,
        "devices": result.devices,
    }
    users_q.audit(conn, user, "registry.import", now, detail=counts, ip=client_ip(request))
    return ImportOut(**counts, changed=result.changed)


@router.get("/users", responses={**AUTH, **FORBIDDEN})
def users(conn: Conn) -> list[UserRow]:
    """Every account with its disabled flag."""
    return [
        UserRow(**UserOut.of(u).model_dump(), disabled=disabled)
        for u, disabled in users_q.list_users(conn)
    ]


@router.post(
    "/users",
    status_code=201,
    dependencies=[Depends(require_csrf)],
    responses={
        **AUTH,
        **FORBIDDEN,
        **errors(409, 422, s409="Username taken", s422="Invalid account"),
    },
)
def add_user(body: UserIn, request: Request, conn: Conn, user: AdminUser, now: NowMs) -> UserOut:
    """Create an account (dispatchers need a centre, families their elders)."""
    try:
        check_username(body.username)
        pw_hash = hash_password(body.password)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    if body.role is Role.DISPATCHER:
        if not body.center_id:
            raise HTTPException(422, "a dispatcher needs a center_id")
        if admin_q.unknown_ids(conn, "care_centers", [body.center_id]):
            raise HTTPException(422, f"no care centre {body.center_id!r}")
    if body.role is Role.FAMILY:
        missing = admin_q.unknown_ids(conn, "elders", body.elder_ids)
        if missing:
            raise HTTPException(422, f"no elder {', '.join(missing)}")
    try:
        with conn.transaction():
            created = users_q.add_user(
                conn,
                body.username,
                body.role,
                pw_hash,
                now,
                center_id=body.center_id if body.role is Role.DISPATCHER else None,
                elder_ids=body.elder_ids if body.role is Role.FAMILY else (),
                display_name=body.display_name,
                language=body.language,
            )
            users_q.audit(
                conn,
                user,
                "user.add",
                now,
                target=body.username,
                detail={"role": body.role.value},
                ip=client_ip(request),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise HTTPException(409, "username taken") from exc
    return UserOut.of(created)


@router.get("/audit", responses={**AUTH, **FORBIDDEN})
def audit(
    conn: Conn,
    username: Annotated[str | None, Query(max_length=32)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=128)] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> AuditPage:
    """The audit trail, newest first."""
    rows = admin_q.list_audit(
        conn,
        username=username,
        action=action,
        target=target,
        before_id=int(cursor) if cursor else None,
        limit=limit,
    )
    nxt = str(rows[-1].id) if len(rows) == limit else None
    return AuditPage(items=[AuditOut(**vars_of(r)) for r in rows], next_cursor=nxt)


def vars_of(entry: admin_q.AuditEntry) -> dict[str, Any]:
    """The fields of an audit entry."""
    return {k: getattr(entry, k) for k in AuditOut.model_fields}
