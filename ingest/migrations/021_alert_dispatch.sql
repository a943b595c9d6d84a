-- Alerting: what dispatch needs to escalate (routing history) and what restarts need to
-- avoid raising an alert twice for the same device message (the newest trigger merged in).
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS routed_ts bigint;         -- platform ms, last (re)route
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS tried_centers text[] NOT NULL DEFAULT '{}';
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS last_event_ts bigint;     -- device ms, newest trigger
UPDATE alerts SET routed_ts = raised_ts WHERE routed_ts IS NULL;
UPDATE alerts SET last_event_ts = event_ts WHERE last_event_ts IS NULL;
UPDATE alerts SET tried_centers = ARRAY[center_id] WHERE tried_centers = '{}';
CREATE INDEX IF NOT EXISTS alerts_elder_kind_last_event ON alerts (elder_id, kind, last_event_ts);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status) WHERE status IN ('open', 'acknowledged', 'escalated');
