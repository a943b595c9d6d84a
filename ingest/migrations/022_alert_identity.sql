-- Alerting: the identity (device_id, event_ts, event_seq) of the device message that raised an
-- alert, so a replay of that message after a restart raises nothing (contract §1 message
-- identity), and how often an active alert was triggered again (a held or repeatedly
-- pressed button counts here instead of flooding the centre's feed).
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS event_seq bigint;          -- NULL: no message caused it
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS trigger_count integer NOT NULL DEFAULT 1;
CREATE INDEX IF NOT EXISTS alerts_device_event ON alerts (device_id, event_ts);
