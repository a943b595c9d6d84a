-- Alerting's local outbox (alerting/outbox.py) replays the transitions it recorded while
-- PostgreSQL was down; each carries a stable key so a replay after a crash stores it once.
ALTER TABLE alert_transitions ADD COLUMN IF NOT EXISTS outbox_key text;
CREATE UNIQUE INDEX IF NOT EXISTS alert_transitions_outbox_key
    ON alert_transitions (outbox_key) WHERE outbox_key IS NOT NULL;
