"""The family page (installable web app) and its API: elders, preferences, "I'm going"."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from alerting.notify.policy import ALL_KINDS, GOING_NOTE
from dashboard.accounts import Role, User
from dashboard.deps import ActingUser, Conn, CurrentUser, NowMs, client_ip, require_roles
from dashboard.errors import errors
from dashboard.models import Created
from dashboard.queries import alerts as alerts_q
from dashboard.queries import devices as devices_q
from dashboard.queries import notify as notify_q
from dashboard.queries import users as users_q
from dashboard.routes.pages import _file_response

router = APIRouter(tags=["family"])

AlertId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
FamilyUser = Annotated[User, Depends(require_roles(Role.FAMILY))]


# -- the page ---------------------------------------------------------------------------------


@router.get("/family", include_in_schema=False)
def family_page() -> Response:
    """The family page (it signs in by itself when there is no session)."""
    return _file_response("family/index.html")


@router.get("/family/sw.js", include_in_schema=False)
def service_worker() -> Response:
    """The service worker, served under /family so that its scope covers the page."""
    resp = _file_response("family/sw.js")
    resp.headers["Service-Worker-Allowed"] = "/family"
    return resp


@router.get("/family/manifest.webmanifest", include_in_schema=False)
def manifest() -> Response:
    """The web app manifest (W3C Web Application Manifest): installable on the home screen."""
    resp = _file_response("family/manifest.webmanifest")
    resp.headers["Content-Type"] = "application/manifest+json"
    return resp


@router.get("/family/icon-{size}.png", include_in_schema=False)
def icon(size: Literal["192", "512"]) -> Response:
    """The app icon for the manifest and the home screen."""
    resp = _file_response(f"family/icon-{size}.png")
    resp.headers["Content-Type"] = "image/png"
    return resp


# -- preferences ------------------------------------------------------------------------------


class Preferences(BaseModel):
    """Which kinds to be told of, quiet hours in the person's time zone, the language.

    Critical alerts (SOS, fall, smoke, anything raised as critical) come regardless.
    """

    kinds: list[Literal[ALL_KINDS]] = Field(default_factory=lambda: list(ALL_KINDS))  # type: ignore[valid-type]
    quiet_from: str | None = None
    quiet_to: str | None = None
    time_zone: str = Field("Asia/Shanghai", max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")
    language: Literal["zh-CN", "en"] = "zh-CN"

    @field_validator("quiet_from", "quiet_to")
    @classmethod
    def _hhmm(cls, value: str | None) -> str | None:
        if value is not None and not HHMM.fullmatch(value):
            raise ValueError("HH:MM, 24-hour")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError("unknown IANA time zone") from exc
        return value


@router.get("/api/v1/me/preferences", response_model=Preferences, responses=errors(401))
def get_preferences(conn: Conn, user: CurrentUser) -> Preferences:
    """The signed-in person's notification preferences."""
    p = notify_q.get_prefs(conn, user.id)
    return Preferences(
        kinds=p.kinds, quiet_from=p.quiet_from, quiet_to=p.quiet_to, time_zone=p.time_zone,
        language=p.language,
    )  # fmt: skip


@router.put("/api/v1/me/preferences", response_model=Preferences, responses=errors(401, 403, 422))
def put_preferences(body: Preferences, conn: Conn, user: ActingUser, now: NowMs) -> Preferences:
    """Replace the preferences (quiet hours need both ends or neither)."""
    if (body.quiet_from is None) != (body.quiet_to is None):
        raise HTTPException(422, "quiet hours need both quiet_from and quiet_to")
    row = notify_q.PrefsRow(
        [k for k in ALL_KINDS if k in body.kinds],
        body.quiet_from,
        body.quiet_to,
        body.time_zone,
        body.language,
    )
    notify_q.put_prefs(conn, user.id, row, now)
    return get_preferences(conn, user)


# -- the shared incident ----------------------------------------------------------------------


@router.post(
    "/api/v1/alerts/{alert_id}/going",
    status_code=201,
    response_model=Created,
    responses=errors(401, 403, 404, 409, 422),
)
def going(alert_id: AlertId, request: Request, conn: Conn, user: ActingUser, now: NowMs) -> Created:
    """A family member says "I'm going": a note on the alert's history, so the console's feed,
    the other members' pages and their phones all hear of it. Returns its event id."""
    if user.role is not Role.FAMILY:
        raise HTTPException(403, "family accounts only")
    with conn.transaction():
        cur = alerts_q.lock_alert(conn, alert_id)
        if cur is None or not user.sees_elder(cur.elder_id):
            raise HTTPException(404, "no such alert")
        if cur.status not in alerts_q.ACTIVE_STATUSES:
            raise HTTPException(409, f"alert is {cur.status}")
        alerts_q.act_as(conn, user)
        event_id = alerts_q.add_history(
            conn, alert_id, cur.status, cur.center_id, user.username, GOING_NOTE, now
        )
        users_q.audit(conn, user, "going", now, target=alert_id, ip=client_ip(request))
    return Created(id=event_id)


class ReadOut(BaseModel):
    """How many of the member's notifications were marked read."""

    read: int


@router.post(
    "/api/v1/alerts/{alert_id}/read", response_model=ReadOut, responses=errors(401, 403, 404, 422)
)
def read(alert_id: AlertId, conn: Conn, user: ActingUser, now: NowMs) -> ReadOut:
    """The member saw the alert on the page: their notifications of it count as read."""
    alert = alerts_q.get_alert(conn, alert_id)
    if alert is None or not user.sees_elder(alert.elder_id):
        raise HTTPException(404, "no such alert")
    return ReadOut(read=notify_q.mark_read(conn, user.id, alert_id, now))


# -- the family's elders ----------------------------------------------------------------------


class FamilyDevice(BaseModel):
    """A device as the family sees it: alive, battery."""

    id: str
    type: str
    online: bool
    battery_pct: float | None
    last_seen_ts: int | None


class Position(BaseModel):
    """The elder's newest fix (device clock), shown only while an alert is open."""

    lat: float
    lon: float
    position_ts: int | None


class FamilyElder(BaseModel):
    """A linked elder, their devices, and their position only during an open alert."""

    id: str
    name: str
    home_lat: float
    home_lon: float
    devices: list[FamilyDevice]
    alert_open: bool
    position: Position | None


class FamilyOut(BaseModel):
    """The elders linked to the member, and the centres' names for the alert states."""

    elders: list[FamilyElder]
    centers: dict[str, str]


@router.get("/api/v1/family/elders", response_model=FamilyOut, responses=errors(401, 403))
def family_elders(conn: Conn, user: FamilyUser) -> FamilyOut:
    """The member's linked elders with live device state; no position without an alert."""
    ids = list(user.elder_ids)
    names = notify_q.elder_homes(conn, ids)
    active = notify_q.open_alert_elders(conn, ids)
    devices = devices_q.devices_of_elders(conn, ids)
    out = []
    for elder_id in sorted(names):
        mine = [d for d in devices if d.elder_id == elder_id]
        fixes = [d for d in mine if d.lat is not None and d.lon is not None]
        fixes.sort(key=lambda d: d.position_ts or 0, reverse=True)
        pos = None
        if elder_id in active and fixes:
            best = fixes[0]
            assert best.lat is not None and best.lon is not None
            pos = Position(lat=best.lat, lon=best.lon, position_ts=best.position_ts)
        out.append(
            FamilyElder(
                id=elder_id,
                name=names[elder_id][0],
                home_lat=names[elder_id][1],
                home_lon=names[elder_id][2],
                devices=[
                    FamilyDevice(
                        id=d.id, type=d.type, online=d.online, battery_pct=d.battery_pct,
                        last_seen_ts=d.last_seen_ts,
                    )
                    for d in mine
                ],
                alert_open=elder_id in active,
                position=pos,
            )
        )  # fmt: skip
    return FamilyOut(elders=out, centers=notify_q.center_names(conn))
