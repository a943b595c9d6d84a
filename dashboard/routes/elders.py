"""Elders: the searchable list and the elder's card (contacts, key-holders, devices)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from dashboard.accounts import Role, User
from dashboard.deps import Conn, CurrentUser, NowMs
from dashboard.errors import Responses, errors
from dashboard.queries import elders as elders_q
from dashboard.queries import users as users_q
from dashboard.queries.devices import DeviceView, devices_seen
from gateway import Family
from gateway.fleet import hhmm

router = APIRouter(prefix="/api/v1/elders", tags=["elders"])

AUTH: Responses = errors(401, 422)
NOT_VISIBLE: Responses = errors(404, s404="Unknown elder, or not linked to this family account")


class WindowOut(BaseModel):
    """A daily window in local time when a key-holder can be called (`to` < `from` wraps)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", examples=["22:00"])
    to: str = Field(examples=["07:00"])


class FamilyOut(BaseModel):
    """A family member or key-holder of the elder."""

    id: str
    name: str
    phone: str | None
    email: str | None
    relation: str | None
    key_holder: bool
    available: list[WindowOut] = Field(description="Empty: no restriction given")

    @classmethod
    def of(cls, f: Family) -> FamilyOut:
        """From the registry."""
        return cls(
            id=f.id,
            name=f.name,
            phone=f.phone,
            email=f.email,
            relation=f.relation,
            key_holder=f.key_holder,
            available=[
                WindowOut.model_validate({"from": hhmm(w.from_min), "to": hhmm(w.to_min)})
                for w in f.available
            ],
        )


class DeviceOut(BaseModel):
    """A device with its live state (`position_ts` is device time, the others platform time)."""

    id: str
    type: str
    elder_id: str
    heartbeat_s: int
    online: bool
    battery_pct: float | None
    last_seen_ts: int | None
    lat: float | None
    lon: float | None
    position_ts: int | None

    @classmethod
    def of(cls, d: DeviceView) -> DeviceOut:
        """From the device query."""
        return cls(
            id=d.id,
            type=d.type,
            elder_id=d.elder_id,
            heartbeat_s=d.heartbeat_s,
            online=d.online,
            battery_pct=d.battery_pct,
            last_seen_ts=d.last_seen_ts,
            lat=d.lat,
            lon=d.lon,
            position_ts=d.position_ts,
        )


class ElderCard(BaseModel):
    """Who the elder is, where, how to get in, whom to call, and their devices."""

    id: str
    name: str
    address: str | None
    phone: str | None
    language: str | None
    notes: str | None
    home_lat: float
    home_lon: float
    safe_radius_m: float
    families: list[FamilyOut]
    devices: list[DeviceOut]
    access_code: str | None = Field(
        description="Key-safe code: only for admins and the dispatcher holding a taken alert"
    )


class ElderSummary(BaseModel):
    """One row of the elder list."""

    id: str
    name: str
    address: str | None
    phone: str | None
    home_lat: float
    home_lon: float
    devices: int
    active_alerts: int


class ElderPage(BaseModel):
    """A page of elders; `next_cursor` is None on the last page."""

    items: list[ElderSummary]
    next_cursor: str | None


def elder_card(
    conn: Conn, user: User, elder_id: str, now_ms: int | None = None
) -> ElderCard | None:
    """The card of an elder as `user` may see it; None when unknown or not visible.

    Every answer that reveals the access code is recorded in the audit trail (at `now_ms`,
    default the wall clock): who saw a key-safe code, and when, must be on record.
    """
    if not user.sees_elder(elder_id):
        return None
    elder = elders_q.get_elder(conn, elder_id)
    if elder is None:
        return None
    shows_code = elder.access_code is not None and (
        user.role is Role.ADMIN
        or (
            user.role is Role.DISPATCHER
            and elders_q.holds_taken_alert(conn, elder_id, user.username)
        )
    )
    if shows_code:
        at = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        users_q.audit(conn, user, "access_code.view", at, target=elder_id)
    return ElderCard(
        id=elder.id,
        name=elder.name,
        address=elder.address,
        phone=elder.phone,
        language=elder.language,
        notes=elder.notes,
        home_lat=elder.home_lat,
        home_lon=elder.home_lon,
        safe_radius_m=elder.safe_radius_m,
        families=[FamilyOut.of(f) for f in elder.families],
        devices=[
            DeviceOut.of(d) for d in devices_seen(conn, [elder_id], family=user.role is Role.FAMILY)
        ],
        access_code=elder.access_code if shows_code else None,
    )


@router.get("", responses=AUTH)
def list_elders(
    conn: Conn,
    user: CurrentUser,
    q: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ElderPage:
    """Elders in id order, searchable by id, name, address or phone (family: linked only)."""
    only = list(user.elder_ids) if user.role is Role.FAMILY else None
    rows = elders_q.list_elders(conn, q=q, after_id=cursor, limit=limit, only=only)
    items = [ElderSummary(**{k: getattr(r, k) for k in ElderSummary.model_fields}) for r in rows]
    return ElderPage(items=items, next_cursor=rows[-1].id if len(rows) == limit else None)


@router.get("/{elder_id}", responses={**AUTH, **NOT_VISIBLE})
def get_elder(elder_id: str, conn: Conn, user: CurrentUser, now: NowMs) -> ElderCard:
    """The elder's card."""
    card = elder_card(conn, user, elder_id, now)
    if card is None:
        raise HTTPException(404, "no such elder")
    return card
