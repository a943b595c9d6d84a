-- Alerting: when the condition behind a condition alert began (smoke, wandering, a silence, a
-- low battery, inactivity, an anomaly), on its detector's time base, ms. Triggers of the same
-- episode after a person closed its alert raise nothing until the condition clears and a new
-- episode begins. NULL for discrete events (SOS presses, falls) and older alerts.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS episode_ts bigint;
CREATE INDEX IF NOT EXISTS alerts_episode ON alerts (device_id, kind, episode_ts)
    WHERE episode_ts IS NOT NULL;
