"""Telecare answer-time KPIs and centre load, read from the alerts tables (database adapter).

Answer time is `acked_ts - raised_ts` (a resolve without an explicit acknowledgement counts
as the answer). The targets are the telecare call-handling standard (TEC Quality, formerly TSA,
Quality Standards Framework): 97.5 % of alarm calls answered within 60 s, 99 % within 180 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: importing this module needs no database driver
    import psycopg

# (answer time in seconds, share of alerts that must be answered within it)
ANSWER_TARGETS: tuple[tuple[int, float], ...] = ((60, 0.975), (180, 0.99))


@dataclass(frozen=True, slots=True)
class AnswerTimeKpi:
    """Answer-time figures of one centre (or of all, `center_id` None) over a period.

    An alert is judged against a threshold once its outcome is known: answered (in time or
    late), or still unanswered after the threshold. One withdrawn by the wearer (cancelled
    unanswered) before the threshold, or raised less than the threshold ago, is not judged.
    """

    center_id: str | None
    alerts: int  # raised in the period
    answered: int
    judged_60s: int
    within_60s: int
    judged_180s: int
    within_180s: int

    @property
    def share_60s(self) -> float | None:
        """Share of judged alerts answered within 60 s (None when none is judged)."""
        return self.within_60s / self.judged_60s if self.judged_60s else None

    @property
    def share_180s(self) -> float | None:
        """Share of judged alerts answered within 180 s (None when none is judged)."""
        return self.within_180s / self.judged_180s if self.judged_180s else None

    @property
    def meets_targets(self) -> bool | None:
        """Both industry targets met (None when nothing could be judged)."""
        shares = (self.share_60s, self.share_180s)
        if any(s is None for s in shares):
            return None
        return all(
            s is not None and s >= t for s, (_, t) in zip(shares, ANSWER_TARGETS, strict=True)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, shares included."""
        return {
            "center_id": self.center_id,
            "alerts": self.alerts,
            "answered": self.answered,
            "judged_60s": self.judged_60s,
            "within_60s": self.within_60s,
            "share_60s": self.share_60s,
            "judged_180s": self.judged_180s,
            "within_180s": self.within_180s,
            "share_180s": self.share_180s,
            "meets_targets": self.meets_targets,
        }


@dataclass(frozen=True, slots=True)
class AnswerTimeReport:
    """Answer-time KPIs overall and per centre for alerts raised in [since_ms, now_ms]."""

    since_ms: int
    now_ms: int
    overall: AnswerTimeKpi
    centers: tuple[AnswerTimeKpi, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "since_ms": self.since_ms,
            "now_ms": self.now_ms,
            "targets": [{"within_s": s, "share": t} for s, t in ANSWER_TARGETS],
            "overall": self.overall.to_dict(),
            "centers": [c.to_dict() for c in self.centers],
        }


# Per threshold T: answered within T; judged = answered, or unanswered for longer than T.
_KPI_SQL = """
WITH a AS (
    SELECT center_id,
           COALESCE(acked_ts, CASE WHEN status = 'resolved' THEN closed_ts END) - raised_ts
               AS answer_ms,
           CASE WHEN status = 'cancelled' THEN closed_ts ELSE %(now)s END - raised_ts
               AS waited_ms
    FROM alerts
    WHERE raised_ts >= %(since)s AND raised_ts <= %(now)s
)
SELECT center_id, count(*), count(answer_ms),
       count(*) FILTER (WHERE answer_ms IS NOT NULL OR waited_ms > 60000),
       count(*) FILTER (WHERE answer_ms <= 60000),
       count(*) FILTER (WHERE answer_ms IS NOT NULL OR waited_ms > 180000),
       count(*) FILTER (WHERE answer_ms <= 180000)
FROM a
GROUP BY GROUPING SETS ((center_id), ())
ORDER BY center_id NULLS FIRST
"""


_NOW_SQL = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"


def _report(rows: list[tuple[Any, ...]], since_ms: int, now_ms: int) -> AnswerTimeReport:
    kpis = [AnswerTimeKpi(r[0], *(int(v) for v in r[1:])) for r in rows]
    overall = next((k for k in kpis if k.center_id is None), None)
    if overall is None:  # no alert at all: GROUPING SETS yields no rows
        overall = AnswerTimeKpi(None, 0, 0, 0, 0, 0, 0)
    centers = tuple(k for k in kpis if k.center_id is not None)
    return AnswerTimeReport(since_ms, now_ms, overall, centers)


def answer_time_kpis(
    conn: psycopg.Connection[Any], since_ms: int, now_ms: int | None = None
) -> AnswerTimeReport:
    """Answer-time KPIs of the alerts raised since `since_ms`, per centre and overall.

    Alerts are counted at the centre they are routed to now (the one that answered, after
    escalations); the answer time runs from the raise, which is what the caller waited.

    Args:
        conn: An open connection whose search path holds the `alerts` table.
        since_ms: Start of the period, platform ms.
        now_ms: End of the period (default: the database clock).
    """
    if now_ms is None:
        row = conn.execute(_NOW_SQL).fetchone()
        assert row is not None
        now_ms = int(row[0])
    rows = conn.execute(_KPI_SQL, {"since": since_ms, "now": now_ms}).fetchall()
    return _report(rows, since_ms, now_ms)


async def answer_time_kpis_async(
    conn: psycopg.AsyncConnection[Any], since_ms: int, now_ms: int | None = None
) -> AnswerTimeReport:
    """`answer_time_kpis` on an asyncio connection (for the dashboard)."""
    if now_ms is None:
        row = await (await conn.execute(_NOW_SQL)).fetchone()
        assert row is not None
        now_ms = int(row[0])
    cur = await conn.execute(_KPI_SQL, {"since": since_ms, "now": now_ms})
    return _report(await cur.fetchall(), since_ms, now_ms)


@dataclass(frozen=True, slots=True)
class CenterLoad:
    """How loaded one centre was over a period."""

    center_id: str
    capacity: int | None  # None when the centre is not in the registry
    peak_active: int  # most alerts active at the centre at the same time
    over_capacity_alerts: int  # alerts routed there while no centre had spare capacity

    @property
    def over_capacity(self) -> bool:
        """Whether the centre was over its capacity at some point of the period."""
        too_many = self.capacity is not None and self.peak_active > self.capacity
        return too_many or self.over_capacity_alerts > 0


# Responsibility spans from the transition history (an alert belongs to the centre of its last
# transition until the next one); alerts without history span raise..close at their centre.
_LOAD_SQL = """
WITH spans AS (
    SELECT t.center_id, t.to_status, t.at_ts AS start_ts,
           COALESCE(lead(t.at_ts) OVER (PARTITION BY t.alert_id ORDER BY t.at_ts, t.id),
                    a.closed_ts, %(now)s) AS end_ts
    FROM alert_transitions t JOIN alerts a USING (alert_id)
), active AS (
    SELECT center_id, start_ts, end_ts FROM spans
    WHERE to_status IN ('open', 'acknowledged', 'escalated')
    UNION ALL
    SELECT center_id, raised_ts, COALESCE(closed_ts, %(now)s) FROM alerts a
    WHERE NOT EXISTS (SELECT 1 FROM alert_transitions t WHERE t.alert_id = a.alert_id)
), clipped AS (
    SELECT center_id, GREATEST(start_ts, %(since)s) AS s, LEAST(end_ts, %(now)s) AS e
    FROM active
), steps AS (
    SELECT center_id, s AS ts, 1 AS delta FROM clipped WHERE e > s
    UNION ALL
    SELECT center_id, e, -1 FROM clipped WHERE e > s
), running AS (
    -- At equal times, ends (-1) sort before starts, so back-to-back spans never overlap.
    SELECT center_id, sum(delta) OVER (PARTITION BY center_id ORDER BY ts, delta
                                       ROWS UNBOUNDED PRECEDING) AS n
    FROM steps
), peaks AS (
    SELECT center_id, max(n) AS peak FROM running GROUP BY center_id
), flagged AS (
    SELECT center_id, count(*) AS n FROM alerts
    WHERE over_capacity AND raised_ts >= %(since)s AND raised_ts <= %(now)s
    GROUP BY center_id
), ids AS (
    SELECT id AS center_id FROM care_centers
    UNION SELECT center_id FROM peaks
    UNION SELECT center_id FROM flagged
)
SELECT ids.center_id, c.capacity, COALESCE(p.peak, 0), COALESCE(f.n, 0)
FROM ids
LEFT JOIN care_centers c ON c.id = ids.center_id
LEFT JOIN peaks p ON p.center_id = ids.center_id
LEFT JOIN flagged f ON f.center_id = ids.center_id
ORDER BY ids.center_id
"""


def center_loads(conn: psycopg.Connection[Any], since_ms: int, now_ms: int) -> list[CenterLoad]:
    """Peak simultaneous active alerts and over-capacity routings per centre in a period.

    Args:
        conn: An open connection whose search path holds the registry and alerts tables.
        since_ms: Start of the period, platform ms.
        now_ms: End of the period; alerts still active are counted up to it.
    """
    rows = conn.execute(_LOAD_SQL, {"since": since_ms, "now": now_ms}).fetchall()
    return [
        CenterLoad(r[0], None if r[1] is None else int(r[1]), int(r[2]), int(r[3])) for r in rows
    ]
