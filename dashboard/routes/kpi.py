"""The answer-time panel: alarms answered within 60 s and 180 s, per centre and overall."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from alerting.kpi import ANSWER_TARGETS
from dashboard.accounts import Role
from dashboard.deps import Conn, NowMs, require_roles
from dashboard.errors import errors
from dashboard.queries import kpi as kpi_q
from dashboard.routes.elders import AUTH

router = APIRouter(prefix="/api/v1", tags=["kpi"])

DAY_MS = 86_400_000


class KpiOut(BaseModel):
    """Answer-time figures over alarms a person answered (`center_id` None: all centres)."""

    center_id: str | None
    answered: int
    within_60s: int
    within_180s: int
    share_60s: float | None
    share_180s: float | None
    median_answer_s: float | None

    @classmethod
    def of(cls, k: kpi_q.Kpi) -> KpiOut:
        """From the KPI query."""
        return cls(
            center_id=k.center_id,
            answered=k.answered,
            within_60s=k.within_60s,
            within_180s=k.within_180s,
            share_60s=k.share_60s,
            share_180s=k.share_180s,
            median_answer_s=k.median_answer_s,
        )


class Target(BaseModel):
    """A telecare answer-time target: `share` of alarms answered within `within_s`."""

    within_s: int
    share: float


class KpiPanel(BaseModel):
    """The panel for alarms raised in [since_ts, until_ts] (platform ms)."""

    since_ts: int
    until_ts: int
    targets: list[Target]
    overall: KpiOut
    centers: list[KpiOut]


@router.get(
    "/kpi",
    dependencies=[Depends(require_roles(Role.ADMIN, Role.DISPATCHER))],
    responses={
        **AUTH,
        **errors(403, 422, s403="Family accounts see no centre figures"),
    },
)
def kpi(
    conn: Conn,
    now: NowMs,
    since_ts: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    until_ts: Annotated[int | None, Query(ge=0, le=2**53)] = None,
) -> KpiPanel:
    """Answer-time KPIs (default: alarms raised in the last 24 h).

    Targets: TEC Quality (formerly TSA) Quality Standards Framework, 97.5 % of alarm calls
    answered within 60 s and 99 % within 180 s.
    """
    until = until_ts if until_ts is not None else now
    since = since_ts if since_ts is not None else until - DAY_MS
    if since > until:
        raise HTTPException(422, "since_ts must not be after until_ts")
    overall, centers = kpi_q.answered_kpis(conn, since, until)
    return KpiPanel(
        since_ts=since,
        until_ts=until,
        targets=[Target(within_s=s, share=t) for s, t in ANSWER_TARGETS],
        overall=KpiOut.of(overall),
        centers=[KpiOut.of(c) for c in centers],
    )
