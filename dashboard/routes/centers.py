"""Care centres: coverage, open load and the on-duty switch (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from dashboard.deps import AdminUser, Conn, CurrentUser, NowMs, client_ip, require_csrf
from dashboard.errors import Responses, errors
from dashboard.queries import centers as centers_q
from dashboard.queries import users as users_q
from dashboard.routes.elders import AUTH

router = APIRouter(prefix="/api/v1/centers", tags=["centers"])

FORBIDDEN: Responses = errors(403, s403="Not an admin, or the CSRF token is missing")


class CenterOut(BaseModel):
    """A care centre: where it is, how far it covers, how loaded it is now."""

    id: str
    name: str
    lat: float
    lon: float
    capacity: int
    coverage_km2: float
    coverage_radius_m: float
    on_duty: bool
    open_incidents: int

    @classmethod
    def of(cls, v: centers_q.CenterView) -> CenterOut:
        """From the centre query."""
        c = v.center
        return cls(
            id=c.id,
            name=c.name,
            lat=c.lat,
            lon=c.lon,
            capacity=c.capacity,
            coverage_km2=c.coverage_km2,
            coverage_radius_m=round(c.coverage_radius_m, 1),
            on_duty=v.on_duty,
            open_incidents=v.open_incidents,
        )


class DutyIn(BaseModel):
    """The new duty state of a centre."""

    on_duty: bool


@router.get("", responses=AUTH)
def list_centers(conn: Conn, user: CurrentUser) -> list[CenterOut]:
    """Every care centre with its coverage and open load."""
    return [CenterOut.of(v) for v in centers_q.list_centers(conn)]


@router.post(
    "/{center_id}/duty",
    dependencies=[Depends(require_csrf)],
    responses={**AUTH, **FORBIDDEN, **errors(404, s404="Unknown centre")},
)
def set_duty(
    center_id: str, body: DutyIn, request: Request, conn: Conn, user: AdminUser, now: NowMs
) -> CenterOut:
    """Put a centre on or off duty; routing skips centres off duty."""
    with conn.transaction():
        view = centers_q.set_duty(conn, center_id, body.on_duty)
        if view is None:
            raise HTTPException(404, "no such centre")
        users_q.audit(
            conn,
            user,
            "center.duty",
            now,
            target=center_id,
            detail={"on_duty": body.on_duty},
            ip=client_ip(request),
        )
    return CenterOut.of(view)
