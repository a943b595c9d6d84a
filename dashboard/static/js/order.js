// Queue order, the same as the server's (dashboard/ordering.py): smoke pinned first, then
// severity (critical first), then age (oldest first), then the alert id.
export const SEVERITY_RANK = { critical: 0, high: 1, medium: 2, low: 3 };
export const ACTIVE = new Set(["open", "acknowledged", "escalated"]);

export function queueCompare(a, b) {
  const smoke = (a.kind === "smoke" ? 0 : 1) - (b.kind === "smoke" ? 0 : 1);
  if (smoke) return smoke;
  const sev = (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9);
  if (sev) return sev;
  if (a.raised_ts !== b.raised_ts) return a.raised_ts - b.raised_ts;
  return a.alert_id < b.alert_id ? -1 : a.alert_id > b.alert_id ? 1 : 0;
}

// An alert nobody has taken yet that must sound until someone does.
export function needsCue(alert) {
  return (
    ACTIVE.has(alert.status) &&
    !alert.taken_by &&
    (alert.kind === "smoke" || alert.severity === "critical")
  );
}
