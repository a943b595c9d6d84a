"""Queue order of active alerts (pure): smoke first, then severity, then age."""

from __future__ import annotations

from gateway.contract import AlertKind, Severity

SEVERITY_ORDER = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)


def queue_key(kind: str, severity: str, raised_ts: int, alert_id: str) -> tuple[int, int, int, str]:
    """Sort key of the dispatcher queue.

    Smoke is pinned first whatever its severity: a fire spreads to neighbours and the
    building, and alarm-receiving-centre practice answers it before any personal alarm.
    Then critical before high before medium before low, then the oldest first; the alert id
    breaks ties so the order is total.
    """
    rank = SEVERITY_ORDER.index(Severity(severity))
    return (0 if kind == AlertKind.SMOKE else 1, rank, raised_ts, alert_id)


# The same order in SQL, over `alerts AS a`.
QUEUE_ORDER_SQL = (
    "(a.kind <> 'smoke'),"
    " CASE a.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,"
    ' a.raised_ts, a.alert_id COLLATE "C"'
)
