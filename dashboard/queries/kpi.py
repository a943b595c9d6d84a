"""SQL of the answer-time panel: alarms answered by a person, per centre and overall.

An alarm is answered when an account (`alert_transitions.user_id`, set by the console) first
takes or closes it; its answer time runs from the raise to that transition, which is what the
caller waited. Alarms acknowledged by no person (cancelled by the wearer, closed by the
system, still waiting) are not counted: the panel shows how people answer, not the backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]

_KPI_SQL = """
WITH first_answer AS (
    SELECT DISTINCT ON (t.alert_id) t.alert_id, t.center_id, t.at_ts - a.raised_ts AS answer_ms
    FROM alert_transitions AS t JOIN alerts AS a USING (alert_id)
    WHERE t.user_id IS NOT NULL AND t.to_status IN ('acknowledged', 'resolved')
      AND a.raised_ts >= %(since)s AND a.raised_ts <= %(until)s
    ORDER BY t.alert_id, t.at_ts, t.id
)
SELECT center_id, count(*),
       count(*) FILTER (WHERE answer_ms <= 60000),
       count(*) FILTER (WHERE answer_ms <= 180000),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY answer_ms) / 1000.0
FROM first_answer
GROUP BY GROUPING SETS ((center_id), ())
ORDER BY center_id NULLS FIRST
"""


@dataclass(frozen=True, slots=True)
class Kpi:
    """Answer-time figures of one centre (`center_id` None: all centres)."""

    center_id: str | None
    answered: int
    within_60s: int
    within_180s: int
    median_answer_s: float | None

    @property
    def share_60s(self) -> float | None:
        """Share answered within 60 s (None when nothing was answered)."""
        return self.within_60s / self.answered if self.answered else None

    @property
    def share_180s(self) -> float | None:
        """Share answered within 180 s (None when nothing was answered)."""
        return self.within_180s / self.answered if self.answered else None


def answered_kpis(conn: Conn, since_ms: int, until_ms: int) -> tuple[Kpi, list[Kpi]]:
    """Overall and per-centre KPIs of the alarms raised in [since_ms, until_ms] (platform ms).

    Every registered centre is listed, with zeros when it answered nothing.
    """
    rows = conn.execute(_KPI_SQL, {"since": since_ms, "until": until_ms}).fetchall()
    kpis = {
        r[0]: Kpi(r[0], int(r[1]), int(r[2]), int(r[3]), None if r[4] is None else float(r[4]))
        for r in rows
    }
    overall = kpis.pop(None, Kpi(None, 0, 0, 0, None))
    for (center_id,) in conn.execute("SELECT id FROM care_centers").fetchall():
        kpis.setdefault(center_id, Kpi(center_id, 0, 0, 0, None))
    return overall, [kpis[c] for c in sorted(kpis, key=str)]
